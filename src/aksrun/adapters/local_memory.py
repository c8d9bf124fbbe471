"""`memory=` on the local backend: a task over its limit is killed and reported OOMKilled,
as the kernel's OOM killer does to a pod's container on AKS, so the first OOMKilled comes
from a laptop rehearsal, not from the cluster.

The local supervisor samples the resident memory of each runner's process group (the runner
and everything it started) every SAMPLE_INTERVAL seconds from /proc, without privileges, and
SIGKILLs a group over its limit. A burst faster than the interval can overshoot for that
long; a cgroup would stop it at the byte, but needs privileges a laptop rarely grants.
"""

from __future__ import annotations

import os

SAMPLE_INTERVAL = 0.1  # seconds between samples while runners with a limit run
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def group_rss(groups: set[int]) -> dict[int, int]:
    """Resident bytes per process group (summed over its processes), for these groups."""
    rss: dict[int, int] = {}
    try:
        entries = os.scandir("/proc")
    except OSError:  # no procfs (not Linux): nothing to measure, nothing enforced
        return rss
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
                rss[group] = rss.get(group, 0) + int(fields[21]) * _PAGE
    return rss


def over_limit(limits: dict[int, int]) -> dict[int, int]:
    """Process groups (-> their resident bytes) above their limit: group -> limit bytes."""
    usage = group_rss(set(limits))
    return {group: used for group, used in usage.items() if used > limits[group]}
