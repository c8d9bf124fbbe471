"""Split-apply-combine with pandas over `.map`: one call per group, one job for all of them.

    python examples/pandas_split_apply.py

Each group's frame travels pickled to its call (on AKS, one pod runs several calls); each
call returns a small summary frame, and the caller concatenates them, exactly as a local
`groupby().apply()` would, which the example checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import aksrun


@aksrun.function(cpu="500m", memory="512Mi", timeout="5m")
def summarise(store: str, sales: pd.DataFrame) -> pd.DataFrame:
    """The per-group work: here a few statistics; in real life a model fit or a report."""
    daily = sales.groupby("day")["amount"].sum()
    return pd.DataFrame({
        "store": [store],
        "days": [daily.size],
        "total": [daily.sum()],
        "best_day": [int(daily.idxmax())],
        "p90_daily": [float(np.percentile(daily, 90))],
    })


def make_sales(stores: int = 40, rows: int = 20_000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "store": rng.choice([f"s{i:02d}" for i in range(stores)], size=rows),
        "day": rng.integers(1, 31, size=rows),
        "amount": rng.gamma(2.0, 30.0, size=rows).round(2),
    })


def main() -> pd.DataFrame:
    sales = make_sales()
    groups = list(sales.groupby("store"))  # split
    names = [name for name, _ in groups]
    frames = [frame for _, frame in groups]
    parts = summarise.map(names, frames)  # apply: one job, results in input order
    result = pd.concat(list(parts), ignore_index=True)  # combine

    expected = pd.concat([summarise.local(n, f) for n, f in groups], ignore_index=True)
    pd.testing.assert_frame_equal(result, expected)
    print(result.sort_values("total", ascending=False).head(5).to_string(index=False))
    print(f"{len(result)} stores summarised remotely; same as a local groupby-apply.")
    return result


if __name__ == "__main__":
    main()
