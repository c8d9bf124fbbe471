"""How much memory a process group holds, from /proc, without privileges.

Proportional set size (PSS, /proc/PID/smaps_rollup) where the kernel offers it: a forked
worker shares its parent's pages, and summing resident sizes would count them twice, which
the kernel's own accounting (a cgroup charges a page once) never does. Resident size from
/proc/PID/stat where smaps_rollup is missing (kernels before 4.14).
"""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def group_usage(groups: set[int]) -> dict[int, dict[int, int]]:
    """For each of these process groups: its processes -> the bytes each holds."""
    usage: dict[int, dict[int, int]] = {}
    try:
        entries = os.scandir("/proc")
    except OSError:  # no procfs (not Linux): nothing to measure, nothing enforced
        return usage
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"{entry.path}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            group = int(fields[2])  # after ")": state, ppid, pgrp, ...; rss (pages) is [21]
            if group in groups:
                pid = int(entry.name)
                usage.setdefault(group, {})[pid] = _pss(entry.path) or int(fields[21]) * _PAGE
    return usage


def _pss(path: str) -> int | None:
    try:
        with open(f"{path}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
