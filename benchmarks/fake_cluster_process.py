"""Run the fake cluster in its own process, so the benchmark's CPU time is the client's only.

Protocol on stdin/stdout, one JSON line each: the child prints {"ready": true} once its
kubeconfig is written; then each line "requests" gets the request counters back, "stop" ends it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fake_k8s import FakeCluster  # noqa: E402


def main() -> None:
    kubeconfig, namespace = sys.argv[1], sys.argv[2]
    cluster = FakeCluster().start()
    cluster.write_kubeconfig(kubeconfig, namespace=namespace)
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "requests":
                counts = [[verb, resource, n] for (verb, resource), n in cluster.requests.items()]
                print(json.dumps(counts), flush=True)
            elif line.strip() == "stop":
                break
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
