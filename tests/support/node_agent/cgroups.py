"""Memory cgroups per container, as the kubelet + runc give them: a hard memory limit the
kernel enforces (the OOM killer picks a process inside the cgroup) and an oom_kill counter
that turns an exit into reason OOMKilled.

Each container gets a child of the agent's own memory cgroup. cgroup v1 (memory controller
hierarchy) and v2 (memory.max / memory.events, with memory.oom.group like the kubelet sets)
are both handled. Where neither is writable the agent samples the RSS of the container's
process group instead (RssWatcher), the old fake's approach.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    """One container's cgroup directory."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @property
    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self) -> None:
        """SIGKILL everything left in the container (its init has exited)."""
        if self.version == 2 and (self.path / "cgroup.kill").exists():
            try:
                (self.path / "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError as exc:
            log.debug("cgroup %s not removed: %s", self.path, exc)


def _remove_stale(parent: Path, version: int) -> None:
    """Bases left by agents that died without stop() (their pid is gone)."""
    for base in parent.glob("aksrun-node-agent-*"):
        try:
            pid = int(base.name.split("-")[3])
        except (IndexError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            continue
        for child in base.iterdir():
            if child.is_dir():
                Cgroup(child, version).kill_all()
                Cgroup(child, version).remove()
        try:
            base.rmdir()
        except OSError:
            pass


class MemoryCgroups:
    """Creates per-container cgroups below the agent's own (None when not possible here)."""

    def __init__(self, enabled: bool = True) -> None:
        self.version = 0
        self.base: Path | None = None
        self.reason = "memory_cgroups=False"
        if not enabled:
            return
        self.reason = ""
        try:
            self._detect()
        except OSError as exc:
            self.reason = str(exc)
            self.base = None

    def _detect(self) -> None:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        own: dict[str, str] = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(","):
                own[c] = path
        # one base per agent instance: two agents in one process must not reap each other's
        base_name = f"aksrun-node-agent-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if "memory" in own and (CGROUP_ROOT / "memory").is_dir():
            parent = CGROUP_ROOT / "memory" / own["memory"].lstrip("/")
            _remove_stale(parent, 1)
            base = parent / base_name
            base.mkdir(exist_ok=True)
            self.version, self.base = 1, base
            return
        if (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:
            parent = CGROUP_ROOT / own[""].lstrip("/")
            if "memory" not in (CGROUP_ROOT / "cgroup.controllers").read_text().split():
                raise OSError("cgroup v2 without the memory controller")
            # a cgroup with processes cannot delegate controllers (no internal processes):
            # this works when the agent's own cgroup is a delegated, process-free parent.
            (parent / "cgroup.subtree_control").write_text("+memory")
            _remove_stale(parent, 2)
            base = parent / base_name
            base.mkdir(exist_ok=True)
            (base / "cgroup.subtree_control").write_text("+memory")
            self.version, self.base = 2, base
            return
        raise OSError("no writable memory cgroup")

    @property
    def available(self) -> bool:
        return self.base is not None

    def create(self, name: str, limit_bytes: int | None) -> Cgroup | None:
        if self.base is None:
            return None
        path = self.base / name
        try:
            path.mkdir(exist_ok=True)
            if self.version == 1:
                if limit_bytes:
                    (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                try:
                    (path / "memory.swappiness").write_text("0")
                except OSError:
                    pass
            else:
                if limit_bytes:
                    (path / "memory.max").write_text(str(limit_bytes))
                try:
                    (path / "memory.swap.max").write_text("0")
                    (path / "memory.oom.group").write_text("1")
                except OSError:
                    pass
        except OSError as exc:
            log.warning("cgroup %s: %s", path, exc)
            try:
                path.rmdir()
            except OSError:
                pass
            return None
        return Cgroup(path, self.version)

    def close(self) -> None:
        if self.base is not None:
            for child in list(self.base.iterdir()) if self.base.exists() else []:
                if child.is_dir():
                    Cgroup(child, self.version).kill_all()
                    Cgroup(child, self.version).remove()
            try:
                self.base.rmdir()
            except OSError:
                pass


def group_rss(pgids: set[int]) -> dict[int, int]:
    """Resident bytes per process group, summed over /proc."""
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat") as f:
                pgrp = int(f.read().rsplit(")", 1)[1].split()[2])
            if pgrp not in pgids:
                continue
            with open(f"{entry.path}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss[pgrp] = rss.get(pgrp, 0) + int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return rss


class RssWatcher:
    """Fallback memory-limit enforcement without cgroups: samples process-group RSS every
    `interval` seconds while any limited container runs, SIGKILLs a group over its limit and
    reports it (the caller then reports OOMKilled)."""

    def __init__(self, interval: float = 0.05, name: str = "node-agent rss") -> None:
        self.interval = interval
        self.name = name
        self._limits: dict[int, tuple[int, Callable[[int], None]]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def watch(self, pgid: int, limit: int, on_kill: Callable[[int], None]) -> None:
        with self._lock:
            self._limits[pgid] = (limit, on_kill)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name,
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def unwatch(self, pgid: int) -> None:
        with self._lock:
            self._limits.pop(pgid, None)

    def _run(self) -> None:
        while not self._stop:
            with self._lock:
                limits = dict(self._limits)
            if not limits:
                self._wake.wait()
                self._wake.clear()
                continue
            for pgid, used in group_rss(set(limits)).items():
                limit, on_kill = limits[pgid]
                if used > limit:
                    try:
                        os.killpg(pgid, signal.SIGKILL)
                    except OSError:
                        pass
                    self.unwatch(pgid)
                    on_kill(used)
            self._wake.wait(self.interval)
            self._wake.clear()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
