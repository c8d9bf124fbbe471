"""The one runner entrypoint, `python -m aksrun.runner`, in a pod or a local process.

It receives only pointers (store URL, job id, digest of the job record, task index) and
keeps its start light: no Azure or kubernetes import unless the store needs it.
"""
