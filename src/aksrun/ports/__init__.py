"""The two ports every backend plugs into: where bytes live (`store.Store`) and where runners
run (`compute.Compute`). The client lifecycle only ever talks to these protocols.

Submodules are imported where used, so the runner and the local supervisor load only what
they need.
"""
