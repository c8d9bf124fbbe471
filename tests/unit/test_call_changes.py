"""The worker's cheap after-call look (runner/call_changes.py): the kernel signals a write into
the output pipes, whoever writes, and an entry made in the artifacts root; a call that did
neither is seen as unchanged. Run in a child interpreter: watching blocks a signal in the
process that watches."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, os, subprocess, sys, tempfile
from aksrun.runner.call_changes import CallChanges

reader, writer = os.pipe()
root = tempfile.mkdtemp()
root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
changes = CallChanges.watch([reader])
changes.watch_directory(root_fd)
seen = {"armed": changes.armed, "nothing": changes.seen()}
os.write(writer, b"x")
seen["a write"] = changes.seen()
seen["taken once"] = changes.seen()
os.read(reader, 10)
os.write(writer, b"a")
os.write(writer, b"b")  # into a pipe not read yet
seen["two writes"] = changes.seen()
subprocess.run([sys.executable, "-c", f"import os; os.write({writer}, b'child')"],
               pass_fds=[writer], check=True)
seen["a child's write"] = changes.seen()
subprocess.run(["mkdir", os.path.join(root, "running-1")], check=True)
seen["a directory made by a child"] = changes.seen()
open(os.path.join(root, "running-1", "f"), "w").close()
seen["a file deeper down"] = changes.seen()
seen["unwatched"] = CallChanges().seen()
blind = CallChanges.watch([])
blind.watch_directory(None)  # the artifacts root could not be opened
seen["a root it can't watch"] = blind.seen()
print(json.dumps(seen))
"""


def test_writes_and_new_entries_are_seen_once_and_nothing_else():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == {
        "armed": True, "nothing": False, "a write": True, "taken once": False,
        "two writes": True, "a child's write": True, "a directory made by a child": True,
        "a file deeper down": False, "unwatched": True, "a root it can't watch": True}
