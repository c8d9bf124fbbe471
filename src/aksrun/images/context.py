"""Build contexts for aksrun's images, and the tags that name them by content.

A tag is a promise about content: the runner tag hashes the Dockerfile, the client's own
aksrun files and the pins it installs, so a changed client never reuses a stale image and an
unchanged one never rebuilds. Everything here is computed locally (no registry, no network):
`image build` and the first call of a function with `requirements=` both start from the tag.

The wheel inside the runner context is packed from the aksrun files this process imported
(an editable checkout with local changes included): the pod runs the code the client runs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

RUNNER_REPOSITORY = "aksrun-runner"
ENV_REPOSITORY = "aksrun-env"
# Microsoft's mirror of Docker's official python images (see runner.Dockerfile for why MCR).
DEFAULT_BASE = "mcr.microsoft.com/mirror/docker/library/python:{python}-slim"
# What the runner needs at run time besides aksrun itself, pinned to the client's versions:
# a pickle only loads under the cloudpickle that wrote it, and tblib rebuilds tracebacks.
PINNED = ("cloudpickle", "tblib")
SHORT_HASH = 12


@dataclass(frozen=True)
class BuildContext:
    """A Dockerfile and its files, the repository and tag they build, and the build arguments.

    `files` are produced lazily (the runner's wheel is packed only when the context is
    written or uploaded); `digest` covers everything the image depends on.
    """

    repository: str
    tag: str
    digest: str
    build_args: Mapping[str, str]
    _files: Mapping[str, bytes] | None = field(default=None, repr=False)
    _make_files: object = field(default=None, repr=False, compare=False)

    dockerfile: str = "Dockerfile"

    @property
    def files(self) -> Mapping[str, bytes]:
        if self._files is not None:
            return self._files
        return self._make_files()  # type: ignore[operator]

    @property
    def image_name(self) -> str:
        """repository:tag, relative to a registry's login server (as ACR Tasks takes it)."""
        return f"{self.repository}:{self.tag}"

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Write the context into `directory` (created if missing); returns it."""
        root = Path(directory)
        for name, data in sorted(self.files.items()):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return root

    def tar_gz(self) -> bytes:
        """The context as ACR Tasks takes it: a gzip'd tar with fixed owners and times, so the
        same context always uploads the same bytes."""
        import gzip
        import tarfile

        buffer = io.BytesIO()
        # gzip's header carries a time too: 0, or the same context uploads other bytes.
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, \
                tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in sorted(self.files.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def python_minor(python: str | None = None) -> str:
    """X.Y of the client (or the given version), checked: pickles only load on the same minor."""
    value = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    parts = value.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]) or parts[0] != "3":
        raise ConfigError(f"python {value!r} is not a Python version; use e.g. --python 3.11.")
    return ".".join(parts[:2])


def default_base(python: str) -> str:
    return DEFAULT_BASE.format(python=python)


def runner_context(python: str | None = None, base: str | None = None,
                   pip_args: Mapping[str, str] | None = None) -> BuildContext:
    """The runner image's context for this client: its aksrun, its pins, the given Python.

    `pip_args` (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST) are build arguments:
    where packages come from, not what they are, so they stay out of the tag.
    """
    from .. import __version__

    python = python_minor(python)
    base = base or default_base(python)
    dockerfile = _resource("runner.Dockerfile")
    constraints = _constraints()
    package = _package_files()
    h = hashlib.sha256()
    for part in (dockerfile, constraints.encode(), python.encode(), base.encode(),
                 __version__.encode()):
        h.update(len(part).to_bytes(8, "big") + part)
    for name, data in package:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    digest = h.hexdigest()
    tag = f"py{python}-{__version__}-{digest[:SHORT_HASH]}"

    def make_files() -> dict[str, bytes]:
        wheel_name, wheel = _pack_wheel(package)
        return {
            "Dockerfile": dockerfile,
            f"wheels/{wheel_name}": wheel,
            "wheels/constraints.txt": constraints.encode(),
        }

    args = {"BASE": base, "AKSRUN_VERSION": __version__, "AKSRUN_PYTHON": python,
            **_pip_args(pip_args)}
    return BuildContext(RUNNER_REPOSITORY, tag, digest, args, None, make_files)


def env_context(requirements: Sequence[str], runner_image: str, runner_tag: str,
                python: str | None = None, base: str | None = None,
                pip_args: Mapping[str, str] | None = None) -> BuildContext:
    """A dependency image's context: `requirements` installed FROM `runner_image` (a digest
    reference). Its tag is the sha256 of the Python minor, base, normalised sorted
    requirements and runner tag, so equal needs share one image."""
    python = python_minor(python)
    base = base or default_base(python)
    normal = normalize_requirements(requirements)
    key = json.dumps({"python": python, "base": base, "requirements": normal,
                      "runner": runner_tag}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(key.encode()).hexdigest()
    files = {
        "Dockerfile": _resource("env.Dockerfile"),
        "requirements.txt": ("\n".join(normal) + "\n").encode(),
        "constraints.txt": _constraints().encode(),
    }
    args = {"RUNNER": runner_image, "AKSRUN_REQUIREMENTS": json.dumps(normal),
            **_pip_args(pip_args)}
    return BuildContext(ENV_REPOSITORY, digest, digest, args, files)


def env_tag(requirements: Sequence[str], runner_tag: str, python: str | None = None,
            base: str | None = None) -> str:
    """The dependency image's tag alone (no files), for lookups."""
    return env_context(requirements, "unused", runner_tag, python, base).tag


def normalize_requirements(requirements: Iterable[str]) -> list[str]:
    """Canonical, sorted, de-duplicated requirement strings (PEP 508 via `packaging`): `NumPy`
    and `numpy` are one need, and the order a user lists them in doesn't matter."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    out: set[str] = set()
    for raw in requirements:
        text = str(raw).split("#", 1)[0].strip()
        if not text:
            continue
        if text.startswith("-"):
            raise ConfigError(
                f"requirement {raw!r} is a pip option; options are not allowed in "
                "requirements=, put the package index in AKSRUN_PIP_INDEX_URL instead.")
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise ConfigError(
                f"requirement {raw!r} is not a valid pip requirement ({exc}); use e.g. "
                "'pandas>=2.2' or 'torch==2.5.1'.") from None
        req.name = canonicalize_name(req.name)
        if req.specifier:
            req.specifier = type(req.specifier)(",".join(sorted(str(s) for s in req.specifier)))
        out.add(str(req))
    return sorted(out)


def read_requirements_file(path: str | os.PathLike[str]) -> list[str]:
    """Lines of a requirements file, without comments and blanks (options are refused later)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"requirements file {path} could not be read: {exc.strerror}.")
    return [line.strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


# --- parts -----------------------------------------------------------------------------------

_PIP_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")


def _pip_args(pip_args: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (pip_args or {}).items():
        if key not in _PIP_ARGS:
            raise ConfigError(f"{key} is not a pip build argument; use one of {_PIP_ARGS}.")
        if value:
            out[key] = str(value)
    return out


@functools.cache
def _resource(name: str) -> bytes:
    # Beside this module (importlib.resources costs ~14 ms to import at a first submission).
    return (Path(__file__).parent / name).read_bytes()


def _constraints() -> str:
    lines = [f"{name}=={_version(name)}" for name in PINNED]
    return "\n".join(lines) + "\n"


def _version(name: str) -> str:
    """The installed version: the module's own `__version__` (importing importlib.metadata
    alone costs ~30 ms, a first submission's budget), else the distribution's metadata."""
    import importlib

    version = getattr(importlib.import_module(name), "__version__", None)
    if isinstance(version, str):
        return version
    import importlib.metadata

    return importlib.metadata.version(name)


def _package_files() -> list[tuple[str, bytes]]:
    """(path inside the wheel, bytes) of the aksrun package this process runs."""
    import aksrun

    root = Path(aksrun.__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((f"aksrun/{path.relative_to(root).as_posix()}", path.read_bytes()))
    return files


def _pack_wheel(package: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A wheel of this aksrun: its files plus its installed metadata, packed by `wheel`."""
    import importlib.metadata
    import tempfile

    from wheel.wheelfile import WheelFile

    dist = importlib.metadata.distribution("aksrun")
    version = dist.version
    info = f"aksrun-{version}.dist-info"
    with tempfile.TemporaryDirectory(prefix="aksrun-wheel-") as tmp:
        root = Path(tmp) / "unpacked"
        for name, data in package:
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        meta = root / info
        meta.mkdir(parents=True)
        (meta / "METADATA").write_text(dist.read_text("METADATA") or "")
        (meta / "WHEEL").write_text("Wheel-Version: 1.0\nGenerator: aksrun\n"
                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        entry_points = dist.read_text("entry_points.txt")
        if entry_points:
            (meta / "entry_points.txt").write_text(entry_points)
        name = f"aksrun-{version}-py3-none-any.whl"
        out = Path(tmp) / name
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = "315532800"  # 1980-01-01: reproducible zip times
        try:
            with WheelFile(out, "w") as wheel:
                wheel.write_files(str(root))
        finally:
            if previous is None:
                os.environ.pop("SOURCE_DATE_EPOCH", None)
            else:
                os.environ["SOURCE_DATE_EPOCH"] = previous
        return name, out.read_bytes()
