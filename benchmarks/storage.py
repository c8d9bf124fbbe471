"""BlobStore vs the raw azure-storage-blob SDK on Azurite, measured side by side in one run.

A NumPy array (default 1 GiB) goes up and down, through:
- BlobStore: `put(envelope.dumps(array).parts)` (streamed from the array's memory) and
  `get()` (one preallocated buffer; the array is unpickled as a view of it);
- the raw SDK with the same max_concurrency: `upload_blob(bytes)` (the SDK needs the bytes
  in one piece, so the parts are joined first: that copy counts in its memory, not in its
  time) and `download_blob().readall()`.

Both upload the same bytes. Every measurement runs in a fresh subprocess so its peak RSS
(VmHWM) belongs to that one operation; memory is reported as (peak RSS - RSS before the
array existed) / array size. Targets: BlobStore >= 80% of the SDK's throughput, peak memory
<= 1.5x the array.

Run: `.venv/bin/python benchmarks/storage.py [--size 1GiB] [--repeat 3] [--in-memory]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONTAINER = "bench"
MODES = ("blobstore-put", "sdk-put", "blobstore-get", "sdk-get")
THROUGHPUT_TARGET = 0.80
MEMORY_TARGET = 1.5


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1GiB or 256MiB")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    scale = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit[0]]
    if "I" not in unit and unit != "B":
        scale = {"K": 10**3, "M": 10**6, "G": 10**9}[unit[0]]
    return int(number * scale)


def rss_kib(field: str) -> int:
    """VmRSS or VmHWM of this process, in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def make_array(size: int):
    """The same pseudo-random bytes in every worker, filled in slices (no big temporaries)."""
    import numpy as np

    rng = np.random.default_rng(1234)
    array = np.empty(size, dtype=np.uint8)
    step = 16 << 20
    for start in range(0, size, step):
        array[start : start + step] = rng.integers(0, 256, min(step, size - start), np.uint8)
    return array


def reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux), so it measures what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


# ---- one measurement, in its own process ---------------------------------------------------


def worker(mode: str, size: int, concurrency: int) -> dict:
    from azure.storage.blob import BlobServiceClient

    from aksrun.adapters.blob_store import BlobStore
    from aksrun.core import envelope
    from aksrun.core.config import load_config

    connection_string = os.environ["AKSRUN_STORAGE_CONNECTION_STRING"]
    config = load_config(cwd=tempfile.gettempdir())
    store = BlobStore.from_url(f"az://{CONTAINER}", config, max_concurrency=concurrency)
    sdk = BlobServiceClient.from_connection_string(connection_string)
    blob = sdk.get_blob_client(CONTAINER, "sdk.pkl")
    base = rss_kib("VmRSS")
    result: dict = {"mode": mode}

    if mode.endswith("-put"):
        array = make_array(size)
        reset_peak()  # the array (1x) stays in RSS; creating it is not the operation
        payload = envelope.dumps(array, what="array")
        result["bytes"] = payload.size
        result["sha256"] = payload.sha256
        if mode == "blobstore-put":
            started = time.perf_counter()
            store.put("blobstore.pkl", payload.parts)
            result["seconds"] = time.perf_counter() - started
        else:
            data = b"".join(payload.parts)  # the SDK takes one contiguous buffer (untimed)
            started = time.perf_counter()
            blob.upload_blob(data, overwrite=True, max_concurrency=concurrency)
            result["seconds"] = time.perf_counter() - started
    else:
        expected = os.environ["BENCH_SHA256"]
        if mode == "blobstore-get":
            started = time.perf_counter()
            buffer = store.get("blobstore.pkl")
            result["seconds"] = time.perf_counter() - started
            array = envelope.loads(buffer, expected, "array")  # verified, a view of buffer
            assert array.nbytes == size
        else:
            started = time.perf_counter()
            buffer = blob.download_blob(max_concurrency=concurrency).readall()
            result["seconds"] = time.perf_counter() - started
            assert hashlib.sha256(buffer).hexdigest() == expected
        result["bytes"] = len(buffer)
    result["peak_kib"] = rss_kib("VmHWM")
    result["base_kib"] = base
    return result


def run_worker(mode: str, size: int, concurrency: int, env: dict[str, str]) -> dict:
    command = [sys.executable, __file__, "--worker", mode, "--size", str(size),
               "--concurrency", str(concurrency)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker {mode} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the table ------------------------------------------------------------------------------


def main() -> None:
    from aksrun.adapters.blob_store import MAX_CONCURRENCY

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=1 << 30, help="array size (1GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--concurrency", type=int, default=MAX_CONCURRENCY)
    parser.add_argument("--in-memory", action="store_true",
                        help="Azurite keeps blobs in RAM (takes the disk out of the numbers)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.concurrency)))
        return

    from tests.support.azurite import start_azurite

    with tempfile.TemporaryDirectory(prefix="aksrun-bench-azurite-") as folder:
        server = start_azurite(None if args.in_memory else folder, in_memory=args.in_memory)
        try:
            server.service_client().create_container(CONTAINER)
            env = {**os.environ, "AKSRUN_STORAGE_CONNECTION_STRING": server.connection_string,
                   "AZURE_TOKEN_CREDENTIALS": "dev", "AKSRUN_HOME": folder}
            runs: dict[str, list[dict]] = {m: [] for m in MODES}
            for i in range(args.repeat):
                # Interleaved, and who goes first alternates (ABBA), so drift and the
                # emulator's clean-up of the previous object hit both sides alike.
                order = MODES if i % 2 == 0 else ("sdk-put", "blobstore-put", "sdk-get",
                                                  "blobstore-get")
                for mode in order:
                    result = run_worker(mode, args.size, args.concurrency, env)
                    if mode == "blobstore-put":
                        env["BENCH_SHA256"] = result["sha256"]
                    runs[mode].append(result)
                    print(f"  run {i + 1}/{args.repeat} {mode:14s} {result['seconds']:7.2f} s",
                          file=sys.stderr, flush=True)
        finally:
            server.stop()
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict]]) -> None:
    size = args.size

    def seconds(mode: str) -> float:
        return statistics.median(r["seconds"] for r in runs[mode])

    def mbps(mode: str) -> float:
        return runs[mode][0]["bytes"] / seconds(mode) / 1e6

    def memory(mode: str) -> float:
        return max((r["peak_kib"] - r["base_kib"]) * 1024 for r in runs[mode]) / size

    print(f"\nStorage round trip of a {size / (1 << 20):,.0f} MiB NumPy array on Azurite "
          f"({'in memory' if args.in_memory else 'on disk'}), max_concurrency="
          f"{args.concurrency}, median of {args.repeat}; memory = (peak RSS - RSS before the "
          "array) / array size, worst run\n")
    header = (f"{'operation':<10}{'BlobStore MB/s':>16}{'raw SDK MB/s':>14}{'ratio':>8}"
              f"{'BlobStore mem':>15}{'SDK mem':>9}")
    print(header)
    print("-" * len(header))
    totals = {}
    for op in ("put", "get"):
        ours, theirs = mbps(f"blobstore-{op}"), mbps(f"sdk-{op}")
        print(f"{op:<10}{ours:>16,.0f}{theirs:>14,.0f}{ours / theirs:>8.2f}"
              f"{memory(f'blobstore-{op}'):>14.2f}x{memory(f'sdk-{op}'):>8.2f}x")
        totals[op] = (seconds(f"blobstore-{op}"), seconds(f"sdk-{op}"))
    ours_rt = 2 * size / (totals["put"][0] + totals["get"][0]) / 1e6
    sdk_rt = 2 * size / (totals["put"][1] + totals["get"][1]) / 1e6
    worst_mem = max(memory("blobstore-put"), memory("blobstore-get"))
    print(f"{'put+get':<10}{ours_rt:>16,.0f}{sdk_rt:>14,.0f}{ours_rt / sdk_rt:>8.2f}"
          f"{worst_mem:>14.2f}x")
    ratio = ours_rt / sdk_rt
    print(f"\nthroughput target >= {THROUGHPUT_TARGET:.0%} of the raw SDK: {ratio:.0%} -> "
          f"{'MET' if ratio >= THROUGHPUT_TARGET else 'MISSED'}")
    print(f"memory target <= {MEMORY_TARGET}x the array: {worst_mem:.2f}x -> "
          f"{'MET' if worst_mem <= MEMORY_TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
