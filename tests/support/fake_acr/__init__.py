"""A strict stand-in for Azure Container Registry's data plane, over a real OCI registry.

- `FakeAcrFront` (front.py): ACR's token flow, `/acr/v1/` API and `/v2/` proxy on HTTPS.
- `start_registry` (backend.py): a throw-away `docker-registry` for the front to sit on.
- `push_image` / `push_index` (oci.py): tiny real images pushed straight into the backend.
- fixtures.py: pytest fixtures (`acr_backend`, `acr_entra`, `acr_identity`, `fake_acr`).
"""

from .backend import DistributionRegistry, RegistryUnavailable, start_registry
from .front import DEFAULT_TENANT, FakeAcrFront, RequestRecord
from .oci import PushedImage, push_blob, push_image, push_index, push_manifest
from .tokens import ROLE_ACTIONS

__all__ = [
    "DEFAULT_TENANT",
    "ROLE_ACTIONS",
    "DistributionRegistry",
    "FakeAcrFront",
    "PushedImage",
    "RegistryUnavailable",
    "RequestRecord",
    "push_blob",
    "push_image",
    "push_index",
    "push_manifest",
    "start_registry",
]
