"""`memory=` on the local backend, the kernel's part: a runner's process group over its limit
is killed whole and reported OOMKilled, as the OOM killer of a cgroup v2 container on AKS
takes every process of the container at once.

The runner itself stops a call that reaches the limit (runner/memory.py), so that call fails
as itself and the others keep their values; this is the backstop for a group the runner did
not bring back under its limit within BACKSTOP_AFTER seconds (the runner's own memory, or its
watch not running). It samples every SAMPLE_INTERVAL seconds from /proc, without privileges:
a cgroup would stop it at the byte, but needs privileges a laptop rarely grants.
"""

from __future__ import annotations

from ..core.process_memory import group_usage

SAMPLE_INTERVAL = 0.1  # seconds between samples while runners with a limit run
# How long a group may stay over its limit before the backstop kills it: the runner's own
# watch (sampling every 0.1 s) has stopped the call long before.
BACKSTOP_AFTER = 1.0


def over_limit(limits: dict[int, int]) -> dict[int, int]:
    """Process groups (-> their bytes) over their limit now."""
    usage = group_usage(set(limits))
    totals = {group: sum(pids.values()) for group, pids in usage.items()}
    return {group: used for group, used in totals.items() if used > limits[group]}
