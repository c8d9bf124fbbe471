"""The image toolchain from a shell.

    python -m tests.support.images prepare     # one-time, with network: wheels + base image
    python -m tests.support.images build       # the runner image into the cached registry
    python -m tests.support.images serve       # registry + index in the foreground (Ctrl-C)
    python -m tests.support.images status      # what the cache holds
    python -m tests.support.images clean       # delete the cache (prepare again: ~1 min)

`prepare` is what `make test` runs before the tests, which never download anything.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from .base import build_base, cached_base, default_buildah, recipe
from .cache import cache_root
from .pypi import prepare_wheels, prepared_wheels, serve_index
from .registry import start_registry
from .steps import ImageToolError


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare() -> int:
    started = time.monotonic()
    had_wheels, had_base = prepared_wheels() is not None, cached_base() is not None
    wheels = prepare_wheels(say=_say)
    t_wheels = time.monotonic() - started
    base = build_base(say=_say)
    t_base = time.monotonic() - started - t_wheels
    print(f"wheels: {wheels.stats.get('wheels')} in {wheels.root} "
          f"({'cached' if had_wheels else 'downloaded'}: {t_wheels:.1f} s)")
    print(f"base image: {base.image} ({'cached' if had_base else 'built'}: {t_base:.1f} s)")
    print(f"prepared in {time.monotonic() - started:.1f} s; cache {cache_root()}")
    return 0


def build() -> int:
    from .session import TestImages

    images = TestImages(cache_root() / "serve").start(say=_say)
    try:
        assert images.runner is not None
        print(images.runner.reference)
    finally:
        images.stop()
    return 0


def serve() -> int:
    """Registry + index for a person trying builds by hand (buildah, pip)."""
    wheels = prepared_wheels()
    registry = start_registry(cache_root() / "registry", workdir=cache_root() / "serve")
    index = serve_index(wheels) if wheels else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"registry: {registry.login_server} (CA {registry.cert_file})")
    if index is not None:
        print(f"index: {index.index_url}")
    print("Ctrl-C stops both", flush=True)
    try:
        stop.wait()
    finally:
        if index is not None:
            index.stop()
        registry.stop()
    return 0


def status() -> int:
    base = cached_base()
    wheels = prepared_wheels()
    print(json.dumps({
        "cache": str(cache_root()),
        "base": {"recipe": recipe(), "built": base is not None,
                 "in_buildah": bool(base and default_buildah().exists(base.image)),
                 **(base.stats if base else {})},
        "wheels": {"prepared": wheels is not None, **(wheels.stats if wheels else {})},
    }, indent=1))
    return 0


def clean() -> int:
    """The cache grows with every runner image a changed client builds: start afresh."""
    from .base import remove_tree

    root = cache_root()
    remove_tree(root)
    print(f"removed {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.images",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "build", "serve", "status", "clean"))
    args = parser.parse_args(argv)
    try:
        return {"prepare": prepare, "build": build, "serve": serve, "status": status,
                "clean": clean}[args.command]()
    except ImageToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
