"""Files a call writes come back verified: `aksrun.output_dir()` and `future.artifacts()`.

    python examples/artifacts.py [DEST]

Each call renders a small report (CSV and text) into its own output directory; the caller
downloads every call's files into DEST (default ./artifacts-demo), each checked against the
sha256 the runner recorded.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import aksrun


@aksrun.function(cpu="250m", memory="256Mi", timeout="2m")
def simulate(rate: float, steps: int = 50) -> float:
    """A toy decay simulation that writes its trajectory and a summary as files."""
    out = aksrun.output_dir()
    values = [math.exp(-rate * t) for t in range(steps)]
    with open(out / "trajectory.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "value"])
        writer.writerows(enumerate(values))
    half_life = math.log(2) / rate
    (out / "summary.txt").write_text(f"rate={rate}\nhalf_life={half_life:.3f}\n")
    return half_life


def main(dest: str = "artifacts-demo") -> list[Path]:
    rates = [0.05, 0.1, 0.2]
    futures = [simulate.submit(rate) for rate in rates]
    written = []
    for rate, fut in zip(rates, futures, strict=True):
        print(f"rate {rate}: half-life {fut.result():.2f} steps")
        written += fut.artifacts(Path(dest) / f"rate-{rate}")
    for path in written:
        print(f"  {path}")
    return written


if __name__ == "__main__":
    main(*sys.argv[1:2])
