"""aksrun in one minute: a remote call, a map over 200 inputs, a remote exception.

Run with `make demo`. Without Azure settings this runs on the local backend: the same
lifecycle (pickle -> store -> runner process -> store -> you) as on AKS.
"""

import random
import subprocess
import sys
import traceback

import aksrun


@aksrun.function(cpu="500m", memory="512Mi", timeout="5m")
def estimate_pi(seed: int, samples: int = 20_000) -> float:
    rng = random.Random(seed)
    inside = sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(samples))
    return 4.0 * inside / samples


@aksrun.function(timeout="1m")
def load_dataset(name: str) -> list:
    raise ValueError(f"dataset {name!r} does not exist")


def main() -> None:
    print("1. One remote call (a job with one task):")
    print(f"   estimate_pi(0) = {estimate_pi(0):.4f}\n")

    print("2. A map over 200 inputs: one job, results in input order:")
    estimates = list(estimate_pi.map(range(200)))
    print(f"   mean of {len(estimates)} estimates = {sum(estimates) / len(estimates):.5f}\n")

    print("3. A remote exception comes back as itself, with the remote traceback:")
    try:
        load_dataset("imagenet-2031")
    except ValueError:
        traceback.print_exc(limit=-2)
    print()

    print("4. The jobs you just ran (`aksrun jobs ls`):")
    subprocess.run([sys.executable, "-m", "aksrun.cli", "jobs", "ls", "--limit", "5"], check=True)


if __name__ == "__main__":
    main()
