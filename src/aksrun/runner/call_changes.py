"""Whether a call wrote output or created its artifacts directory, as the kernel tells it.

After each call the worker needs two answers: did the call write to its output pipes (a
map's worker then marks where the call's output ends, runner/call_marks.py), and did
something create the call's artifacts directory (its files are then filed under the call).
Asked with system calls after every call (two marks written, an access(2)), they were most
of what aksrun spent on a short call. Instead the kernel signals the worker when either
happens: the output pipes' read ends on every write into them, whoever writes (O_ASYNC,
F_SETOWN: print, a C extension, a subprocess), and the artifacts root on each entry created
in it (dnotify, F_NOTIFY). The worker keeps the signal blocked and takes it with one
sigtimedwait after each call: a call that did neither costs that one system call.

The signal is SIGURG rather than SIGIO: it is ignored by default, so a pipe written by a
process the call left behind, after the worker ended and its pid was reused, can't kill
anyone; and hardly anything uses it (TCP urgent data). Programs the call starts inherit it
blocked, as they inherit any signal mask. Where the kernel refuses any of this, every call
counts as changed.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Sequence

SIGNAL = signal.SIGURG
_SIGNALS = (SIGNAL,)


class CallChanges:
    def __init__(self) -> None:
        self.armed = False  # not watched: every call counts as changed

    @classmethod
    def watch(cls, pipes: Sequence[int] = ()) -> CallChanges:
        """Have the kernel signal this process at each write into `pipes` (read ends)."""
        changes = cls()
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # before any can come
            for fd in pipes:
                fcntl.fcntl(fd, fcntl.F_SETSIG, SIGNAL)
                fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        except (OSError, ValueError, AttributeError):
            return changes
        changes.armed = True
        return changes

    def watch_directory(self, fd: int | None) -> None:
        """... and at each entry created in the directory open as `fd` (None: a directory
        that could not be opened, so every call counts as changed)."""
        if not self.armed:
            return
        if fd is None:
            self.armed = False
            return
        try:
            fcntl.fcntl(fd, fcntl.F_SETSIG, SIGNAL)
            fcntl.fcntl(fd, fcntl.F_NOTIFY, fcntl.DN_CREATE | fcntl.DN_MULTISHOT)
        except (OSError, ValueError, AttributeError):
            self.armed = False

    def seen(self) -> bool:
        """Whether anything was written or created since the last look (the look takes it)."""
        return not self.armed or signal.sigtimedwait(_SIGNALS, 0) is not None
