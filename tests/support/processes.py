"""Stopping the servers the tests start (Azurite, registries, buildah): each runs in its own
process group (start_new_session=True), so its children go with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def terminate_group(process: subprocess.Popen, grace: float = 5.0, *,
                    whole_group: bool = False) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers past `grace` seconds.
    `whole_group`: signal the group even when its leader has exited (children may not have,
    e.g. a build's RUN steps)."""
    if process.poll() is not None and not whole_group:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)
