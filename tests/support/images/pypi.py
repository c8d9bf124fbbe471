"""A package index on 127.0.0.1 so that `pip install` inside an image build works offline.

`prepare_wheels()` (the one-time step, with PyPI) downloads the wheels the runner image
installs, for CPython 3.11 on manylinux x86_64 (what the Debian bookworm base runs): aksrun's
own requirements with its `runner` extra and everything they pull in, each pinned to the
version installed in this environment, so the image holds exactly the client's versions.
They are kept with static PEP 503 pages (`simple/<project>/index.html`, sha256 fragments,
`data-requires-python`) in `<cache>/wheels/<hash of the pins>/`.

`serve_index(wheels)` serves that directory at test time (`.index_url`, for PIP_INDEX_URL);
a project that is not there is a 404, which pip reports as "No matching distribution found",
as it would for a typo on PyPI.
"""

from __future__ import annotations

import functools
import hashlib
import html
import importlib.metadata
import json
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from .cache import cache_root, locked, recipe_hash
from .steps import ImageToolError, run_step

PYTHON = "3.11"
EXTRAS = ("runner",)
# pip's own tools, so a Dockerfile that upgrades pip or builds an sdist finds them too
TOOLS = ("pip", "setuptools", "wheel")
PLATFORMS = (*(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
             "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
FIX = ("check that PyPI is reachable (`pip download cloudpickle`) and that the package has a "
       "CPython 3.11 manylinux x86_64 wheel; then run `python -m tests.support.images prepare`")


def _installed(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pinned_closure(roots: Iterable[str] = (), extras: Iterable[str] = EXTRAS,
                   tools: Iterable[str] = TOOLS) -> dict[str, str]:
    """project -> installed version for aksrun's requirements (with `extras`), `roots`
    (further requirement strings) and everything they require, as this environment has
    them installed: the image gets the client's versions, not whatever PyPI has today."""
    found: dict[str, str] = {}
    todo: list[tuple[Requirement, frozenset[str]]] = []

    def add(requirement: str, parent_extras: frozenset[str]) -> None:
        todo.append((Requirement(requirement), parent_extras))

    for text in importlib.metadata.requires("aksrun") or []:
        add(text, frozenset(extras))
    for text in [*roots, *tools]:
        add(text, frozenset())
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, parent_extras = todo.pop()
        if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in parent_extras or {""}):
            continue
        name = canonicalize_name(req.name)
        if name == "aksrun":
            continue
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = _installed(name)
        if dist is None:
            if name in TOOLS:
                continue
            raise ImageToolError(
                f"step 'pin wheels': {req} is required but not installed in {sys.prefix}; "
                "run `make venv` (pip install -e '.[dev]') first.")
        found[name] = dist.version
        for text in dist.requires or []:
            add(text, frozenset(req.extras))
    return dict(sorted(found.items()))


@dataclass
class Wheels:
    """Downloaded wheels with their PEP 503 pages: `root` is what the index serves."""

    root: Path
    pins: dict[str, str]
    stats: dict = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return sorted((self.root / "files").glob("*.whl"))


def wheels_dir(pins: dict[str, str]) -> Path:
    return cache_root() / "wheels" / recipe_hash(PYTHON, *PLATFORMS,
                                                 *(f"{k}=={v}" for k, v in pins.items()))


def prepared_wheels(roots: Iterable[str] = ()) -> Wheels | None:
    """The wheels if `prepare_wheels` already downloaded them for these pins (no network)."""
    pins = pinned_closure(roots)
    done = wheels_dir(pins) / "done.json"
    if not done.exists():
        return None
    return Wheels(done.parent, pins, json.loads(done.read_text()))


def prepare_wheels(roots: Iterable[str] = (), say: Callable[[str], None] = print) -> Wheels:
    """The wheels for `roots` + the runner image's requirements, downloaded once (PyPI)."""
    pins = pinned_closure(roots)
    folder = wheels_dir(pins)
    done = folder / "done.json"
    if done.exists():
        return Wheels(folder, pins, json.loads(done.read_text()))
    with locked(f"wheels-{folder.name}"):
        if done.exists():
            return Wheels(folder, pins, json.loads(done.read_text()))
        files = folder / "files"
        files.mkdir(parents=True, exist_ok=True)
        log = folder / "download.log"
        say(f"wheels: downloading {len(pins)} wheels pinned to this environment for CPython "
            f"{PYTHON} manylinux x86_64 into {files}. Log: {log}")
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                "--python-version", PYTHON, "--implementation", "cp", "--abi",
                f"cp{PYTHON.replace('.', '')}", "--abi", "abi3", "--abi", "none",
                *(arg for p in PLATFORMS for arg in ("--platform", p)),
                "--dest", files, *(f"{k}=={v}" for k, v in pins.items())]
        seconds = run_step("pip download", argv, log, FIX, env={"PIP_FIND_LINKS": ""},
                           timeout=1800)
        write_simple_index(folder)
        stats = {"download_s": round(seconds, 1), "wheels": len(list(files.glob("*.whl"))),
                 "bytes": sum(p.stat().st_size for p in files.glob("*.whl"))}
        done.write_text(json.dumps(stats, indent=1))
        say(f"wheels: {stats['wheels']} wheels ({stats['bytes'] / 1e6:.0f} MB) in "
            f"{seconds:.0f} s")
        return Wheels(folder, pins, stats)


def _requires_python(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        for line in archive.read(meta).decode("utf-8", "replace").splitlines():
            if not line.strip():
                break
            if line.lower().startswith("requires-python:"):
                return line.split(":", 1)[1].strip()
    return ""


def write_simple_index(root: Path) -> None:
    """PEP 503 pages for the wheels in `root/files`: /simple/ and /simple/<project>/."""
    by_project: dict[str, list[Path]] = {}
    for wheel in sorted((root / "files").glob("*.whl")):
        name = canonicalize_name(parse_wheel_filename(wheel.name)[0])
        by_project.setdefault(name, []).append(wheel)
    simple = root / "simple"
    simple.mkdir(exist_ok=True)
    links = "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(by_project))
    (simple / "index.html").write_text(
        f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    for name, wheels in by_project.items():
        rows = []
        for wheel in wheels:
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            requires = _requires_python(wheel)
            attr = f' data-requires-python="{html.escape(requires)}"' if requires else ""
            rows.append(f'<a href="../../files/{wheel.name}#sha256={sha}"{attr}>'
                        f"{wheel.name}</a><br>\n")
        (simple / name).mkdir(exist_ok=True)
        (simple / name / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n<h1>Links for {name}</h1>\n{''.join(rows)}"
            "</body></html>\n")


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, requests: list[str], **kwargs) -> None:
        self._requests = requests
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:
        self._requests.append(f"{time.strftime('%H:%M:%S')} {format % args}")


@dataclass
class PackageIndex:
    """A running index: `index_url` for pip, `requests` it answered (one line each)."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[str]

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def index_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> PackageIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_index(wheels: Wheels | Path) -> PackageIndex:
    """Serve the wheels' PEP 503 index on 127.0.0.1 (a free port) until `stop()`."""
    root = wheels.root if isinstance(wheels, Wheels) else Path(wheels)
    if not (root / "simple" / "index.html").exists():
        raise ImageToolError(f"step 'serve index': {root} has no simple/index.html; run "
                             "`python -m tests.support.images prepare`.")
    requests: list[str] = []
    handler = functools.partial(_Handler, directory=str(root), requests=requests)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="package index")
    thread.start()
    return PackageIndex(server, thread, requests)
