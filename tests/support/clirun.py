"""Run the `aksrun` command as a user would: a separate process, this test's environment."""

from __future__ import annotations

import os
import subprocess
import sys


def aksrun_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aksrun.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=os.getcwd(), env=dict(os.environ),
    )


def start_aksrun_cli(*args: str) -> subprocess.Popen[str]:
    """The command started, its output read as it comes (a follower: `jobs logs -f`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "aksrun.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=os.getcwd(),
        env=dict(os.environ),
    )
