"""How a container process is set up on this machine: the wrapper spec (see _exec.py), the
identity it runs as, its capabilities, and the fallback when namespaces are not available.

Isolation is probed once per agent by running the wrapper for real. Without it (not root,
EPERM) containers run on the host file system and container paths in env, args and workingDir
are mapped to host directories (PathMap), the old fake's approach; the agent says so once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
WRAPPER = Path(__file__).with_name("_exec.py")

CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
# containerd's default capability set for a container without a securityContext
DEFAULT_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
                        "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
                        "SYS_CHROOT", "KILL", "AUDIT_WRITE"]


@dataclass
class MountSpec:
    """One mount in the container: a host path bound at `target`, or a tmpfs."""

    target: str
    source: str = ""
    readonly: bool = False
    file: bool = False
    type: str = "bind"
    options: str = ""


@dataclass
class Identity:
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)


def capability_set(sc: dict) -> list[int]:
    """The container's capabilities: containerd's defaults + add - drop ("ALL" allowed)."""
    if sc.get("privileged"):
        return list(range(len(CAPABILITIES)))
    caps = sc.get("capabilities") or {}
    norm = [c.upper().removeprefix("CAP_") for c in caps.get("add") or []]
    drop = [c.upper().removeprefix("CAP_") for c in caps.get("drop") or []]
    keep = set(CAPABILITIES) if "ALL" in norm else set(DEFAULT_CAPABILITIES) | set(norm)
    keep = set(norm) - {"ALL"} if "ALL" in drop else keep - set(drop)
    return sorted(CAPABILITIES.index(c) for c in keep if c in CAPABILITIES)


def usable_by(path: str, ident: Identity) -> bool:
    """Whether `ident` can search every directory on the way to `path` and execute it."""
    if ident.uid == 0:
        return True
    groups = {ident.gid, *ident.groups}

    def allowed(st: os.stat_result, bit_owner: int, bit_group: int, bit_other: int) -> bool:
        if st.st_uid == ident.uid:
            return bool(st.st_mode & bit_owner)
        if st.st_gid in groups:
            return bool(st.st_mode & bit_group)
        return bool(st.st_mode & bit_other)

    real = os.path.realpath(path)
    parts = Path(real).parents
    try:
        for parent in reversed(parts):
            if not allowed(os.stat(parent), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                return False
        # a symlinked executable: every directory on the link's own path counts too
        for parent in reversed(Path(os.path.abspath(path)).parents):
            if not allowed(os.stat(parent), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                return False
        return allowed(os.stat(real), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
    except OSError:
        return False


def python_paths(executable: str) -> list[str]:
    """The directories an interpreter needs at run time (prefixes and its default sys.path,
    .pth entries included): the "image" content a volume must not hide."""
    try:
        out = subprocess.run(
            [executable, "-I", "-c", "import sys, json; print(json.dumps("
             "[sys.prefix, sys.base_prefix, sys.exec_prefix] + sys.path))"],
            capture_output=True, text=True, timeout=30, check=True).stdout
        paths = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        paths = [os.path.dirname(os.path.dirname(executable))]
    keep: list[str] = []
    for p in paths:
        if p and os.path.isdir(p):
            real = os.path.realpath(p)
            for candidate in (os.path.abspath(p), real):
                if candidate not in keep:
                    keep.append(candidate)
    return keep


class PathMap:
    """Fallback without a mount namespace: container paths -> host paths."""

    def __init__(self, mounts: list[MountSpec], rootfs: Path) -> None:
        self.mounts = sorted(((m.target.rstrip("/") or "/", m.source) for m in mounts
                              if m.type == "bind"), key=lambda ms: -len(ms[0]))
        self.rootfs = rootfs

    def map(self, value: str) -> str:
        for mount, host in self.mounts:
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return host + value[len(mount.rstrip("/")):]
        return value

    def directory(self, path: str) -> str:
        """A container directory on the host: its mount, else under the pod's rootfs dir."""
        mapped = self.map(path)
        if mapped == path:
            mapped = str(self.rootfs / path.lstrip("/"))
        os.makedirs(mapped, exist_ok=True)
        return mapped


class Sandbox:
    """Starts container processes through the wrapper; knows what this machine allows."""

    def __init__(self, work: Path, python: str = sys.executable) -> None:
        self.python = python
        self.work = work
        self.isolate = False
        self.reason = ""
        self._exposed: dict[str, list[str]] = {}

    def probe(self) -> bool:
        """Run the wrapper once with a real rootfs: isolation works iff `true` exits 0."""
        probe = self.work / "probe"
        shutil.rmtree(probe, ignore_errors=True)
        for sub in ("upper", "work", "rootfs"):
            (probe / sub).mkdir(parents=True)
        read_fd, write_fd = os.pipe()
        spec = {"rootfs": {"merged": str(probe / "rootfs"), "upper": str(probe / "upper"),
                           "work": str(probe / "work")},
                "hostname": "probe", "mounts": [], "readonly_root": True, "cwd": "/",
                "argv": [shutil.which("true") or "/bin/true"], "env": {"PATH": "/bin"},
                "error_fd": write_fd}
        (probe / "spec.json").write_text(json.dumps(spec))
        try:
            proc = subprocess.Popen([self.python, "-I", "-S", str(WRAPPER),
                                     str(probe / "spec.json")], pass_fds=(write_fd,),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            os.close(write_fd)
            with os.fdopen(read_fd, "rb") as r:
                error = r.read().decode("utf-8", "replace")
            code = proc.wait(timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            error, code = str(exc), -1
        shutil.rmtree(probe, ignore_errors=True)
        self.isolate = code == 0 and not error
        self.reason = "" if self.isolate else (error or f"exit code {code}")
        return self.isolate

    def exposed_paths(self, executable: str) -> list[str]:
        if executable not in self._exposed:
            name = os.path.basename(executable)
            self._exposed[executable] = python_paths(executable) if name.startswith(
                "python") else [os.path.dirname(os.path.realpath(executable))]
        return self._exposed[executable]

    def wrapper_argv(self, spec_path: Path) -> list[str]:
        return [self.python, "-I", "-S", str(WRAPPER), str(spec_path)]
