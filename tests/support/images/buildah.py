"""Thin wrappers around Debian's `buildah` (1.28), the one image builder that works here: no
Docker engine, but root, so `buildah --storage-driver vfs bud --isolation chroot` builds a
Dockerfile for real.

Every call uses a storage root of its own (never the machine's /var/lib/containers), and a
registries.conf with no search registries plus a dead proxy for anything but loopback: a
build can only reach the test registry and the test package index, and an image reference
that would go to Docker Hub or MCR fails at once with the real error instead of leaving
this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..processes import terminate_group
from .steps import ImageToolError

BUILDAH = "buildah"
FIX = "install Debian's buildah (`apt-get install buildah`) and run as root"
# Anything that is not loopback goes to a port nobody listens on: fails fast, stays here.
DEAD_PROXY = "http://127.0.0.1:9"
REGISTRIES_CONF = """\
unqualified-search-registries = []
short-name-mode = "enforcing"
"""


@dataclass
class ImageConfig:
    """What a runtime reads from an image's config (OCI `config` object)."""

    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_oci(cls, config: Mapping) -> ImageConfig:
        c = config.get("config") or {}
        return cls(env=list(c.get("Env") or []), working_dir=c.get("WorkingDir") or "",
                   user=c.get("User") or "", entrypoint=c.get("Entrypoint"), cmd=c.get("Cmd"),
                   labels=dict(c.get("Labels") or {}))


@dataclass
class BudResult:
    """How a `buildah bud` ended: its exit code, its last output lines, the image ID."""

    returncode: int
    lines: list[str]
    image_id: str = ""
    cancelled: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled and not self.timed_out


class Buildah:
    """buildah with an isolated storage root (`root`, `runroot`) and driver (vfs).

    `cert_dir` holds the CA (`*.crt`) that the test registry's certificate is signed with.
    """

    def __init__(self, root: Path, runroot: Path | None = None, driver: str = "vfs",
                 cert_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.runroot = Path(runroot) if runroot else self.root.with_name(self.root.name + "-run")
        self.driver = driver
        self.cert_dir = Path(cert_dir) if cert_dir else None
        self.root.mkdir(parents=True, exist_ok=True)
        self.runroot.mkdir(parents=True, exist_ok=True)
        self._conf = self.root.with_name(self.root.name + "-registries.conf")
        self._conf.write_text(REGISTRIES_CONF)

    # ------------------------------------------------------------------ plumbing
    def argv(self, *args: str) -> list[str]:
        return [BUILDAH, "--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", self.driver, *args]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
        env.update({"CONTAINERS_REGISTRIES_CONF": str(self._conf),
                    "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
                    "NO_PROXY": "127.0.0.1,localhost,::1"})
        return env

    def _tls(self) -> list[str]:
        return ["--cert-dir", str(self.cert_dir)] if self.cert_dir else []

    def run(self, step: str, *args: str, timeout: float = 600) -> str:
        """A buildah command's stdout; ImageToolError with its stderr when it fails."""
        try:
            result = subprocess.run(self.argv(*args), capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL, env=self.env(), timeout=timeout)
        except FileNotFoundError:
            raise ImageToolError(f"step '{step}': buildah is not installed. Fix: {FIX}.")
        except subprocess.TimeoutExpired:
            raise ImageToolError(f"step '{step}': buildah {args[0]} timed out after "
                                 f"{timeout:.0f} s (storage {self.root}).")
        if result.returncode != 0:
            raise ImageToolError(f"step '{step}': `buildah {' '.join(args)}` failed (exit "
                                 f"{result.returncode}): {result.stderr.strip()[-3000:]}")
        return result.stdout

    # ------------------------------------------------------------------ building
    def bud(self, context: Path, tags: Iterable[str] = (), *, dockerfile: str = "Dockerfile",
            build_args: Mapping[str, str] | None = None,
            on_line: Callable[[str], None] = lambda _line: None,
            cancelled: threading.Event | None = None, timeout: float | None = None,
            no_cache: bool = False, layers: bool = False, pull: str = "true",
            target: str | None = None) -> BudResult:
        """Build `context` (output lines streamed to `on_line` as they come). `cancelled`
        set, or `timeout` passed, kills buildah and every RUN step it started."""
        with tempfile.TemporaryDirectory(prefix="bud-") as tmp:
            iidfile = Path(tmp) / "iid"
            args = ["bud", "--isolation", "chroot", f"--pull={pull}", "--retry", "0",
                    "--iidfile", str(iidfile), "-f", str(Path(context) / dockerfile),
                    *self._tls()]
            if layers:
                args.append("--layers")
            if no_cache:
                args.append("--no-cache")
            if target:
                args += ["--target", target]
            for key, value in (build_args or {}).items():
                args += ["--build-arg", f"{key}={value}"]
            for tag in tags:
                args += ["-t", tag]
            args.append(str(context))
            result = self._stream(args, on_line, cancelled, timeout)
            if result.returncode == 0 and iidfile.exists():
                result.image_id = iidfile.read_text().strip()
            return result

    def _stream(self, args: list[str], on_line: Callable[[str], None],
                cancelled: threading.Event | None, timeout: float | None) -> BudResult:
        proc = subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.env(), start_new_session=True, text=True,
                                errors="replace", bufsize=1)
        state = {"cancelled": False, "timed_out": False}
        done = threading.Event()

        def watchdog() -> None:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not done.wait(0.2):
                if cancelled is not None and cancelled.is_set():
                    state["cancelled"] = True
                elif deadline is not None and time.monotonic() > deadline:
                    state["timed_out"] = True
                else:
                    continue
                kill_group(proc)
                return

        guard = threading.Thread(target=watchdog, daemon=True, name="buildah watchdog")
        guard.start()
        last: deque[str] = deque(maxlen=400)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                last.append(line)
                on_line(line)
            code = proc.wait()
        finally:
            done.set()
            guard.join()
            if proc.poll() is None:
                kill_group(proc)
        return BudResult(code, list(last), cancelled=state["cancelled"],
                         timed_out=state["timed_out"])

    # ------------------------------------------------------------------ images
    def push(self, image: str, destination: str, timeout: float = 600) -> str:
        """Push `image` to `docker://destination`; the manifest digest the registry holds."""
        with tempfile.TemporaryDirectory(prefix="push-") as tmp:
            digestfile = Path(tmp) / "digest"
            self.run("push", "push", "--retry", "0", "--digestfile", str(digestfile),
                     *self._tls(), image, f"docker://{destination}", timeout=timeout)
            return digestfile.read_text().strip()

    def pull(self, reference: str, timeout: float = 600) -> str:
        """Pull `reference` (docker://) into this storage; its image ID."""
        out = self.run("pull", "pull", "--retry", "0", "--quiet", *self._tls(),
                       f"docker://{reference}", timeout=timeout)
        return out.strip().splitlines()[-1] if out.strip() else ""

    def exists(self, image: str) -> bool:
        result = subprocess.run(self.argv("inspect", "--type", "image", image),
                                capture_output=True, env=self.env())
        return result.returncode == 0

    def inspect(self, image: str) -> ImageConfig:
        """The image's runtime config (Env, WorkingDir, User, Entrypoint, Cmd, Labels)."""
        data = json.loads(self.run("inspect", "inspect", "--type", "image", image))
        return ImageConfig.from_oci(data.get("OCIv1") or {})

    def rmi(self, *images: str) -> None:
        with contextlib.suppress(ImageToolError):
            self.run("rmi", "rmi", "--force", *images)

    # ------------------------------------------------------------------ working containers
    def from_image(self, reference: str, name: str | None = None, pull: str = "missing") -> str:
        """A working container of `reference` (`scratch` for an empty one); its name."""
        args = ["from", f"--pull={pull}", "--retry", "0", *self._tls()]
        if name:
            args += ["--name", name]
        return self.run("from", *args, reference).strip().splitlines()[-1]

    def mount(self, container: str) -> Path:
        """The container's root file system on this machine (until `umount`)."""
        return Path(self.run("mount", "mount", container).strip())

    def umount(self, container: str) -> None:
        self.run("umount", "umount", container)

    def rm(self, container: str) -> None:
        with contextlib.suppress(ImageToolError):
            self.run("rm", "rm", container)

    def add(self, container: str, source: Path, destination: str = "/") -> None:
        """ADD (a tar archive is unpacked with its owners and modes)."""
        self.run("add", "add", container, str(source), destination, timeout=1800)

    def config(self, container: str, *options: str) -> None:
        self.run("config", "config", *options, container)

    def commit(self, container: str, image: str) -> str:
        return self.run("commit", "commit", "--quiet", container, image,
                        timeout=1800).strip().splitlines()[-1]


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM buildah's process group (it and its RUN steps), SIGKILL if it lingers."""
    terminate_group(proc, whole_group=True)
