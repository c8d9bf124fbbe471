"""The base image the test builds start FROM, made here because Docker Hub and MCR can't be
reached: Debian bookworm by `debootstrap` (its python3 is 3.11, as in python:3.11-slim),
turned into an OCI image with buildah and pushed into the test registry, so that a build's
`FROM ${BASE}` really pulls from a registry.

It is built once per recipe (suite, packages, mirror, image config: their hash keys the
cache entry) under `<cache>/base/<hash>/`, under a lock, and kept as a layer tarball plus a
buildah image. `make test` builds it in its preparation step
(`python -m tests.support.images prepare`); a test session only pushes it to its registry
when the registry's storage lacks it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .buildah import Buildah
from .cache import cache_root, locked, recipe_hash
from .steps import ImageToolError, run_step, step_error

if TYPE_CHECKING:
    from .registry import Registry

SUITE = "bookworm"
PYTHON = "3.11"  # bookworm's python3
PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
MIRROR = os.environ.get("AKSRUN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONFIG = (f"--env=PATH={PATH}", "--env=LANG=C.UTF-8", "--cmd=python3",
          "--label=org.opencontainers.image.description=aksrun test base: Debian "
          f"{SUITE} minbase + {' '.join(PACKAGES)}")
# Where the base lives in a test registry (the Docker official image it stands in for).
REPOSITORY = "library/python"
TAG = f"{PYTHON}-slim-{SUITE}"
# Paths of a debootstrap tree that an image does not carry (the runtime provides them).
EXCLUDES = ("./dev/*", "./proc/*", "./sys/*", "./run/*", "./tmp/*",
            "./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*", "./var/log/*",
            "./etc/resolv.conf", "./etc/hostname")
FIX_DEBOOTSTRAP = ("install debootstrap (`apt-get install debootstrap`), run as root, and "
                   f"check that the Debian mirror {MIRROR} is reachable (set "
                   "AKSRUN_DEBIAN_MIRROR to use another); then run "
                   "`python -m tests.support.images prepare` again")


@dataclass
class BaseImage:
    """The built base: its local image name, its layer tarball and what building it took."""

    recipe: str
    image: str
    layer: Path
    stats: dict

    @property
    def logical_name(self) -> str:
        """A registry-independent name that changes with the recipe (for runner tags)."""
        return f"aksrun-test/python:{PYTHON}-{SUITE}-{self.recipe}"


def recipe() -> str:
    return recipe_hash(SUITE, "minbase", ",".join(PACKAGES), MIRROR, *CONFIG, *EXCLUDES)


def base_dir() -> Path:
    return cache_root() / "base" / recipe()


def default_buildah() -> Buildah:
    """The toolchain's shared buildah storage (vfs) in the cache."""
    root = cache_root() / "buildah"
    return Buildah(root / "storage", root / "run")


def cached_base() -> BaseImage | None:
    stats_file = base_dir() / "done.json"
    if not stats_file.exists():
        return None
    stats = json.loads(stats_file.read_text())
    return BaseImage(recipe(), stats["image"], base_dir() / "layer.tar", stats)


def build_base(buildah: Buildah | None = None,
               say: Callable[[str], None] = lambda _text: None) -> BaseImage:
    """The base image, built first if this recipe has not been built (under a lock)."""
    buildah = buildah or default_buildah()
    found = cached_base()
    if found is not None and buildah.exists(found.image):
        return found
    with locked(f"base-{recipe()}"):
        found = cached_base()
        if found is not None and found.layer.exists():
            if not buildah.exists(found.image):
                say(f"base image: re-importing {found.layer} into {buildah.root}")
                _import(buildah, found.layer, found.image, base_dir() / "build.log")
            return found
        return _build(buildah, say)


def _build(buildah: Buildah, say: Callable[[str], None]) -> BaseImage:
    folder = base_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "build.log"
    log.write_text("")
    rootfs = folder / "rootfs"
    remove_tree(rootfs)
    say(f"base image: debootstrap {SUITE} (minbase + {', '.join(PACKAGES)}) from {MIRROR}; "
        f"first time only, about 1 min. Log: {log}")
    started = time.monotonic()
    stats = {"image": f"localhost/aksrun-test/python:{PYTHON}-{SUITE}-{recipe()}"}
    try:
        stats["debootstrap_s"] = round(run_step(
            "debootstrap", ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                            SUITE, rootfs, MIRROR], log, FIX_DEBOOTSTRAP, timeout=1800), 1)
        _check_tree(rootfs, log)
        layer = folder / "layer.tar"
        stats["tar_s"] = round(run_step(
            "tar the root file system",
            ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", rootfs,
             *[f"--exclude={pattern}" for pattern in EXCLUDES], "-cf", layer, "."],
            log, "check free disk space under the cache directory"), 1)
        stats["import_s"] = round(_import(buildah, layer, stats["image"], log), 1)
    finally:
        remove_tree(rootfs)
    stats["seconds"] = round(time.monotonic() - started, 1)
    stats["layer_bytes"] = (folder / "layer.tar").stat().st_size
    (folder / "done.json").write_text(json.dumps(stats, indent=1))
    say(f"base image: built {stats['image']} in {stats['seconds']:.0f} s")
    return BaseImage(recipe(), stats["image"], folder / "layer.tar", stats)


def _check_tree(rootfs: Path, log: Path) -> None:
    for needed in ("usr/bin/python3", "usr/sbin/useradd", "usr/lib/python3.11/venv"):
        if not (rootfs / needed).exists():
            raise step_error("debootstrap", f"the tree lacks /{needed}", log, FIX_DEBOOTSTRAP)


def _import(buildah: Buildah, layer: Path, image: str, log: Path) -> float:
    """scratch + the layer tarball (owners and modes kept) + the config, committed."""
    started = time.monotonic()
    container = buildah.from_image("scratch")
    try:
        buildah.add(container, layer, "/")
        buildah.config(container, *CONFIG, f"--label=io.aksrun.test.recipe={recipe()}")
        buildah.commit(container, image)
    except ImageToolError as exc:
        with open(log, "a") as out:
            out.write(f"{exc}\n")
        raise ImageToolError(f"{exc}\nFix: {FIX_DEBOOTSTRAP}") from None
    finally:
        buildah.rm(container)
    return time.monotonic() - started


def push_base(base: BaseImage, registry: Registry, buildah: Buildah | None = None) -> str:
    """Make sure `registry` (a Registry) has the base; its digest reference."""
    buildah = buildah or default_buildah()
    client = registry.client()
    digest = client.exists(REPOSITORY, TAG)
    label = None
    if digest is not None:
        config = client.config(REPOSITORY, client.manifest(REPOSITORY, digest))
        label = ((config.get("config") or {}).get("Labels") or {}).get("io.aksrun.test.recipe")
    if digest is None or label != base.recipe:
        if not buildah.exists(base.image):
            _import(buildah, base.layer, base.image, base_dir() / "build.log")
        pusher = Buildah(buildah.root, buildah.runroot, buildah.driver, registry.cert_dir)
        digest = pusher.push(base.image, f"{registry.login_server}/{REPOSITORY}:{TAG}")
    return f"{registry.login_server}/{REPOSITORY}@{digest}"


def remove_tree(path: Path) -> None:
    """rm -rf, after unmounting whatever a killed debootstrap left mounted inside (proc,
    sys): never delete through a mount."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4] for line in info]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    with open("/proc/self/mountinfo") as info:
        if any(line.split()[4].startswith(prefix) for line in info):
            raise ImageToolError(f"{path} still has mounts inside; unmount them and delete it")
    shutil.rmtree(path, ignore_errors=True)
