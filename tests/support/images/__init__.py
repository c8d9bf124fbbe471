"""Real container images for the tests, without Docker: a base image made by debootstrap,
a local registry and package index, buildah builds, and the executor the fake ACR Tasks runs
builds with. The node agent pulls from the same registry, so pods run in the built image.

    python -m tests.support.images prepare   # one-time (network): wheels + base image

Module map: cache (where, lock), steps (a logged step and its error), base (the Debian base
image), pypi (wheels, PEP 503 index), registry (docker-registry on 127.0.0.1),
distribution (registry API client), buildah (buildah wrappers), acr_executor (ACR Tasks
runs), runner (the session's runner image), session (all of it for a test session).
"""
