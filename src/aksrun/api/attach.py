"""`aksrun.get(job_id)`: re-attach to a job from any process, running or finished."""

from __future__ import annotations

from .future import Future
from .session import default_client


def get(job_id: str) -> Future:
    """The job's Future: a call's value, or a map's list of values in input order.

    Works after the submitting process exited: the job record is read from the store and
    the state from compute. An unknown id raises UnknownJobError naming it.
    """
    return Future(default_client().attach(job_id))
