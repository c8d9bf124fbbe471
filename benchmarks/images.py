"""Image lookups and tags: what a function with `requirements=` costs before its Job exists.

Two measurements, each printed as a ratio against a baseline run side by side:

1. Registry requests on a cache hit. 100 submissions of one function (same requirements)
   in one process, through aksrun's image resolver (what KubernetesCompute calls before each
   upload) against the ACR data-plane stand-in over a real distribution registry, signed in
   with DefaultAzureCredential through the fake Entra endpoint. Baseline: the same resolver
   asked with its process cache cleared each time (a design that looks the tag up per
   submission). Target: one lookup per (function, process). Counted: the registry's data
   requests (`/acr/`, `/v2/`) and every HTTP request (the SDK re-does ACR's token exchange
   for each lookup: 401, exchange, token, then the request).
2. Computing the dependency image's tag for 100 requirements (runner context included, as at
   a process's first submission). Baseline: sha256 of the raw requirement strings (no parsing,
   no normalisation). Target: under 50 ms.

Run: `.venv/bin/python benchmarks/images.py` (needs `docker-registry`: `make system-tools`).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUBMISSIONS = 100
REQUIREMENTS = [f"package-{i}>=1.{i},<2" for i in range(100)]


def registry_requests() -> tuple[dict[str, int], dict[str, int]]:
    from tests.support.azurite import make_self_signed_cert, write_ca_bundle
    from tests.support.fake_acr.backend import start_registry
    from tests.support.fake_acr.front import FakeAcrFront
    from tests.support.fake_acr.oci import push_image
    from tests.support.fake_entra import FakeEntra

    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        root = Path(tmp)
        cert, key = make_self_signed_cert(root / "tls")
        ca = write_ca_bundle(cert, root / "ca.pem")
        token = root / "token"
        token.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJiZW5jaCJ9.")
        entra = FakeEntra(cert, key).start()
        for name, value in entra.workload_identity_env(token, ca).items():
            os.environ[name] = value
        os.environ["SSL_CERT_FILE"] = str(ca)
        backend = start_registry(root / "registry", cert_file=cert, key_file=key)
        front = FakeAcrFront(backend.url, cert, key, tenant_id=entra.tenant_id,
                             backend_ca=cert).start()
        front.grant(entra.client_id, "AcrPull")
        try:
            from aksrun.core.config import load_config
            from aksrun.core.options import make_options
            from aksrun.images import resolve
            from aksrun.images.context import env_context, runner_context

            config = load_config({"backend": "kubernetes", "registry": "benchacr",
                                  "registry_login_server": front.login_server,
                                  "home": str(root / "home")})
            runner = runner_context(None, None)
            push_image(backend.url, runner.repository, runner.tag, ca_file=cert)
            runner_ref = f"{front.login_server}/{runner.repository}"
            env = env_context(REQUIREMENTS, runner_ref, runner.tag)
            push_image(backend.url, env.repository, env.tag, ca_file=cert)
            options = make_options(requirements=REQUIREMENTS)
            results = {}
            for design in ("baseline", "aksrun"):
                resolve.forget_known_images()
                resolver = resolve.image_resolver(config)
                front.clear_requests()
                for _ in range(SUBMISSIONS):
                    if design == "baseline":
                        resolve.forget_known_images()
                    reference = resolver(options)
                    assert "@sha256:" in reference, reference
                data = sum(1 for _m, path, status in front.requests
                           if status < 400 and path.startswith(("/acr/", "/v2/")))
                results[design] = {"data": data, "http": len(front.requests)}
            return results["baseline"], results["aksrun"]
        finally:
            front.stop()
            backend.stop()
            entra.stop()


def tag_times(repeat: int = 30) -> tuple[float, float, float]:
    import hashlib
    import subprocess

    # A process's first tag, measured in a fresh interpreter that has what a submission has
    # already loaded (the client, its config, cloudpickle): the tag's own imports count.
    probe = ("import time, aksrun.core.lifecycle, aksrun.core.config, cloudpickle\n"
             "t = time.perf_counter()\n"
             "from aksrun.images.context import env_tag, runner_context\n"
             f"env_tag({REQUIREMENTS!r}, runner_context().tag)\n"
             "print(time.perf_counter() - t)\n")
    firsts = [float(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                   text=True, check=True, cwd=ROOT).stdout)
              for _ in range(5)]
    from aksrun.images.context import env_tag, runner_context

    ours = statistics.median(_time(lambda: env_tag(REQUIREMENTS, runner_context().tag))
                             for _ in range(repeat))
    base = statistics.median(_time(lambda: hashlib.sha256("\n".join(REQUIREMENTS).encode())
                                   .hexdigest()) for _ in range(repeat))
    return statistics.median(firsts), ours, base


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    first, ours, base = tag_times()
    baseline, aksrun = registry_requests()
    print(f"## Images ({SUBMISSIONS} submissions of one function, {len(REQUIREMENTS)} "
          "requirements)\n")
    print("| measure | baseline | aksrun | ratio (aksrun / baseline) | target |")
    print("|---|---|---|---|---|")
    print(f"| registry lookups (data requests) | {baseline['data']} | {aksrun['data']} | "
          f"{aksrun['data'] / baseline['data']:.3f} | 1 per (function, process) |")
    print(f"| registry HTTP requests incl. ACR token exchange | {baseline['http']} | "
          f"{aksrun['http']} | {aksrun['http'] / baseline['http']:.3f} | |")
    print(f"| env tag, 100 requirements, warm (ms) | {base * 1e3:.3f} (raw sha256) | "
          f"{ours * 1e3:.2f} | {ours / base:.0f}x | < 50 ms |")
    print(f"| env tag, a process's first (its imports included; median of 5) (ms) | | "
          f"{first * 1e3:.1f} | | < 50 ms |")


if __name__ == "__main__":
    main()
