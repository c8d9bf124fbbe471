"""Wait until a new user's identity really works, the way their pods will use it.

Entra ID and Azure RBAC take minutes to take in a new identity, its federated credential and
its role assignments (AADSTS70021 "no matching federated identity record", then 403
AuthorizationPermissionMismatch). A user whose first call meets that would think aksrun is
broken, so add-user does what a pod does, until it succeeds or a bound it names runs out:

1. ask the cluster for a token of the user's service account (TokenRequest, audience
   `api://AzureADTokenExchange`): what the kubelet projects into the pod;
2. exchange it at Entra ID for a storage token of the identity (ClientAssertionCredential:
   the exchange WorkloadIdentityCredential makes in the pod);
3. write, read and delete a blob in the user's container with that token.

Each attempt's failure is shown as progress (what is still propagating), never raised until
the bound; the last one is the timeout's message.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..core import naming
from ..core.quantities import format_duration
from .errors import PropagationTimeoutError

STORAGE_SCOPE = "https://storage.azure.com/.default"
DEFAULT_TIMEOUT = 900.0  # 15 min: Entra and RBAC propagation is "up to 10 minutes", mostly less
INTERVAL = 5.0
PROBE_PREFIX = ".aksrun-probe/"


@dataclass(frozen=True)
class ProbeTarget:
    user: str
    tenant_id: str
    client_id: str
    blob_endpoint: str
    container: str


class NotYet(Exception):
    """One attempt failed for a reason that propagation explains."""


def wait_until_reachable(target: ProbeTarget, service_account_token: Callable[[], str], *,
                         timeout: float = DEFAULT_TIMEOUT, interval: float = INTERVAL,
                         on_progress: Callable[[str], None] = lambda text: None,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> tuple[float, int]:
    """Probe until one attempt succeeds; returns (seconds waited, attempts)."""
    started = clock()
    attempts = 0
    bound = _duration(timeout)
    last = "no attempt yet"
    while True:
        attempts += 1
        try:
            with _quiet_identity_log():
                probe_once(target, service_account_token)
            return clock() - started, attempts
        except NotYet as exc:
            last = str(exc)
        waited = clock() - started
        if waited >= timeout:
            tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
            raise PropagationTimeoutError(
                f"{target.user}'s identity could not reach container {target.container!r} "
                f"within {bound} ({tries}): {last}. Azure may still be propagating it: run "
                "the same add-user again later (it finds what exists and waits again), or "
                "raise the bound with --wait.")
        on_progress(f"waiting for {target.user}'s identity to reach its container "
                    f"({_duration(waited)} of at most {bound}): {last}")
        sleep(min(interval, timeout - waited))  # the last attempt is at the bound


@contextlib.contextmanager
def _quiet_identity_log() -> Iterator[None]:
    """azure-identity logs each refused exchange as a warning with the whole response; the
    progress line says it once, shorter, and says what happens next."""
    logger = logging.getLogger("azure.identity")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 and float(seconds).is_integer() \
        else format_duration(seconds)


def probe_once(target: ProbeTarget, service_account_token: Callable[[], str]) -> None:
    """One attempt: token exchange, then write/read/delete; NotYet says what failed."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.identity import ClientAssertionCredential
    from azure.storage.blob import BlobServiceClient

    credential = ClientAssertionCredential(target.tenant_id, target.client_id,
                                           service_account_token)
    try:
        try:
            credential.get_token(STORAGE_SCOPE)
        except ClientAuthenticationError as exc:
            raise NotYet(f"Entra ID does not yet accept the service account's token for the "
                         f"identity ({_first_line(exc)})") from exc
        service = BlobServiceClient(target.blob_endpoint, credential=credential)
        blob = service.get_blob_client(target.container, f"{PROBE_PREFIX}{uuid.uuid4().hex}")
        try:
            blob.upload_blob(b"aksrun add-user probe", overwrite=True)
            blob.download_blob().readall()
            blob.delete_blob()
        except HttpResponseError as exc:
            code = getattr(exc, "error_code", None) or exc.status_code
            raise NotYet(f"the container answers {code} (the role assignment is not effective "
                         "yet)" if exc.status_code == 403 else
                         f"the container answers {code}: {_first_line(exc)}") from exc
    finally:
        credential.close()


def service_account_token(core_api: Any, user: str, seconds: int = 600) -> Callable[[], str]:
    """A function returning a fresh token of the user's service account for Entra ID."""
    namespace = naming.namespace(user)

    def token() -> str:
        request = {"spec": {"audiences": [naming.TOKEN_AUDIENCE], "expirationSeconds": seconds}}
        answer = core_api.create_namespaced_service_account_token(naming.SERVICE_ACCOUNT,
                                                                  namespace, request)
        return answer.status.token

    return token


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
