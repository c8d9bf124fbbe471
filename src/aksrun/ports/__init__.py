"""The two ports every backend plugs into: where bytes live (Store) and where runners run
(Compute). The client lifecycle only ever talks to these protocols."""

from .compute import Compute, JobHandle, JobStatus, LaunchRequest, TaskEvent
from .store import Store

__all__ = ["Compute", "JobHandle", "JobStatus", "LaunchRequest", "Store", "TaskEvent"]
