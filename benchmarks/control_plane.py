"""Control-plane cost of a map on the real test cluster (kube-apiserver, Job controller and
scheduler built from upstream; the node agent runs the pods): aksrun (one Indexed Job per
submission, watched) beside a one-Job-per-call design that polls, driven through the same
cluster.

Counts, per map size: Kubernetes API requests by verb (the API server's own audit log of the
client's user in its namespace), blob operations of every process (Azurite's access log:
client and runners), and the client's CPU seconds per call (the cluster runs in other
processes). Run: `.venv/bin/python benchmarks/control_plane.py [--naive-sample N]`.

The per-call design of 10,000 calls would start 10,000 pods (each a Python process here);
it is measured on `--naive-sample` calls and scaled linearly, which its per-call costs are.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.chdir(ROOT)

from bench_funcs import trivial  # noqa: E402

from tests.support.azurite import start_azurite  # noqa: E402

POLL_SECONDS = 1.0
_LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE|PATCH) ')


class PollingCompute:
    """The baseline: reads a Job's state by polling GET (every POLL_SECONDS) instead of
    watching; the launches are the same manifests."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def events(self, handle, stop=None):
        from aksrun.adapters import kubernetes_events as kev

        while True:
            job = self.inner._read_job(handle.job_id)
            terminal = kev.job_terminal(job)
            if terminal is not None:
                for pod in self.inner._pods(handle.job_id):
                    index = kev.pod_index(pod)
                    if (pod.get("status") or {}).get("phase") == "Succeeded":
                        yield kev.finished_pod_event(pod, index, 0)
                yield terminal
                return
            time.sleep(POLL_SECONDS)


class ClusterProcess:
    """The test cluster in its own processes (`python -m tests.support.k8s serve`): its
    request counts come from the API server's audit log of the person using it."""

    def __init__(self, directory: Path) -> None:
        import subprocess

        self.dir = directory
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.k8s", "serve", "--dir", str(directory)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env_file = directory / "env.sh"
        deadline = time.monotonic() + 180
        while not env_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                error = directory / "error.txt"
                raise SystemExit("the test cluster did not start: "
                                 + (error.read_text() if error.exists() else "see its logs"))
            time.sleep(0.3)
        self.env = dict(re.findall(r"^export (\w+)=(.*)$", env_file.read_text(), re.M))
        self.env = {k: shlex.split(v)[0] for k, v in self.env.items()}
        self.audit_log = directory / "state" / "control-plane" / "logs" / "audit.log"

    @property
    def requests(self) -> collections.Counter:
        namespace = self.env["AKSRUN_NAMESPACE"]
        seen: dict[str, tuple[str, str]] = {}
        for line in self.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if ref.get("namespace") == namespace:
                resource = ref.get("resource", "") + (
                    "/" + ref["subresource"] if ref.get("subresource") else "")
                seen[event["auditID"]] = (event["verb"], resource)
        return collections.Counter(seen.values())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def blob_ops(log_path: Path, offset: int) -> tuple[collections.Counter, int]:
    data = log_path.read_bytes()
    counts = collections.Counter(m.group(1) for m in _LINE.finditer(data[offset:].decode()))
    return counts, len(data)


def measure(run, cluster, log_path) -> dict:
    _, offset = blob_ops(log_path, 0)
    requests = cluster.requests.copy()
    cpu = time.process_time()
    wall = time.perf_counter()
    run()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    time.sleep(0.5)  # the access log is written asynchronously
    blobs, _ = blob_ops(log_path, offset)
    api = cluster.requests - requests
    return {"api": api, "blobs": blobs, "cpu": cpu, "wall": wall}


def fmt_api(api: collections.Counter, scale: float = 1.0) -> str:
    by_verb = collections.Counter()
    for (verb, _resource), count in api.items():
        by_verb[verb] += count
    return " ".join(f"{verb} {round(n * scale)}" for verb, n in sorted(by_verb.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,100,10000")
    parser.add_argument("--naive-sample", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="aksrun-bench-"))
    azurite = start_azurite(tmp / "azurite", access_log=True)
    cluster = ClusterProcess(tmp / "cluster")
    os.environ.update(cluster.env)
    os.environ.update(
        AKSRUN_HOME=str(tmp / "home"), AKSRUN_IMAGE="bench.azurecr.io/aksrun-runner:bench",
        AKSRUN_STORE=f"az://bench-{uuid.uuid4().hex[:8]}/aksrun",
        AKSRUN_STORAGE_CONNECTION_STRING=azurite.connection_string,
        AZURE_TOKEN_CREDENTIALS="dev", AKSRUN_MAX_PARALLEL="100",
    )
    import aksrun
    from aksrun.api.session import default_client

    remote = aksrun.function(cpu="100m", memory="256Mi")(trivial)
    client = default_client()
    list(remote.map(range(2), progress=False))  # warm-up: imports, container, function upload
    rows = []
    try:
        for n in sizes:
            ours = measure(lambda n=n: list(remote.map(range(n), progress=False)), cluster,
                           azurite.log_path)
            sample = min(n, args.naive_sample)
            polling = PollingCompute(client.compute)

            def naive(sample=sample, polling=polling):
                real = client.compute
                client.compute = polling
                try:
                    futures = [remote.submit(i) for i in range(sample)]
                    [f.result(timeout=600) for f in futures]
                finally:
                    client.compute = real

            theirs = measure(naive, cluster, azurite.log_path)
            rows.append((n, sample, ours, theirs))
    finally:
        cluster.stop()

    print("\nControl plane per map, real test cluster + Azurite. 'per-call' = one Job per call, "
          f"status polled every {POLL_SECONDS:g}s.\n")
    print("| calls | design | Kubernetes requests by verb | K8s writes | blob ops | "
          "client CPU / call | wall |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for n, sample, ours, theirs in rows:
        scale = n / sample
        note = f" (measured on {sample}, x{scale:g})" if scale != 1 else ""
        for name, m, k in (("aksrun", ours, 1.0), ("per-call" + note, theirs, scale)):
            writes = sum(v for (verb, _r), v in m["api"].items()
                         if verb in ("create", "update", "patch", "delete"))
            blobs = sum(m["blobs"].values())
            print(f"| {n:,} | {name} | {fmt_api(m['api'], k)} | {round(writes * k):,} | "
                  f"{round(blobs * k):,} | {m['cpu'] / (n / k if k != 1 else n) * 1000:.2f} ms "
                  f"| {m['wall'] * k:.1f} s |")
    print("\nRatios (per-call ÷ aksrun):")
    for n, sample, ours, theirs in rows:
        scale = n / sample
        api_o, api_t = sum(ours["api"].values()), sum(theirs["api"].values()) * scale
        blob_o, blob_t = sum(ours["blobs"].values()), sum(theirs["blobs"].values()) * scale
        cpu_o, cpu_t = ours["cpu"] / n, theirs["cpu"] / sample
        print(f"- {n:,} calls: API requests x{api_t / api_o:.1f}, blob ops "
              f"x{blob_t / blob_o:.1f}, client CPU per call x{cpu_t / cpu_o:.1f}")


if __name__ == "__main__":
    main()
