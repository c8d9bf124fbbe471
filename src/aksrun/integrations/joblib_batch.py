"""What runs in the job for one joblib batch: its calls, one after another.

The backend sends a batch as the plain list of (function, args, kwargs) that joblib's
BatchedCalls holds, not the BatchedCalls object itself: unpickling that needs joblib in the
pod, and aksrun's runner image has only aksrun's own dependencies. So `Parallel(delayed(f)(x)
...)` runs in the stock image; only functions that use joblib themselves (scikit-learn's)
need it there, and they bring it with their own requirements.

This module must not import joblib: the runner imports it to unpickle the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

BatchCall = tuple[Callable[..., Any], Sequence[Any], dict[str, Any]]


def run_batch(calls: Sequence[BatchCall]) -> list[Any]:
    """The batch's values in order; the first exception raised is the batch's, as in
    joblib's own workers. Nested joblib calls inside a function use joblib's defaults: the
    pod is a machine of its own, with the cores its `cpu=` asked for."""
    return [func(*args, **kwargs) for func, args, kwargs in calls]
