"""`python -m tests.support.node_agent --kubeconfig K --root DIR [--pools default|aks-like]
[--registry 127.0.0.1:PORT --registry-ca CA.pem]`: run the node agent in the foreground until
SIGTERM or SIGINT (for `make cluster-up`). With a registry (`python -m tests.support.images
serve` starts one) pods run in their images; without, in host mode."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from . import NodeAgent, aks_like_pools, default_pools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.node_agent",
                                     description=__doc__)
    parser.add_argument("--kubeconfig", required=True, type=Path,
                        help="admin kubeconfig of the API server")
    parser.add_argument("--root", required=True, type=Path,
                        help="work dir: pod dirs, logs, agent.log, TLS cert")
    parser.add_argument("--pools", choices=("default", "aks-like"), default="default")
    parser.add_argument("--max-grace-seconds", type=float, default=5.0)
    parser.add_argument("--delete-nodes", action="store_true",
                        help="delete the Nodes on exit")
    parser.add_argument("--registry", help="login server of the registry to pull from")
    parser.add_argument("--registry-ca", type=Path, help="CA certificate of that registry")
    parser.add_argument("--image-cache", type=Path, help="where pulled layers are unpacked")
    args = parser.parse_args(argv)
    registries = []
    if args.registry:
        from tests.support.images.distribution import RegistryClient

        registries.append(RegistryClient(args.registry, args.registry_ca))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    pools = aks_like_pools() if args.pools == "aks-like" else default_pools()
    agent = NodeAgent(args.kubeconfig, args.root, pools=pools, registries=registries,
                      image_cache=args.image_cache,
                      max_grace_seconds=args.max_grace_seconds).start()
    print(f"node agent ready: {' '.join(agent.node_names)} (log {args.root / 'agent.log'})",
          flush=True)
    try:
        done.wait()
    finally:
        agent.stop(delete_nodes=args.delete_nodes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
