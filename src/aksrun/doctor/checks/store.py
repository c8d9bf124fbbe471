"""The store, probed the way jobs use it: write an object, read it back, delete it. Being
able to list a container proves little; Storage Blob Data Contributor is what a job needs,
and only a write shows it."""

from __future__ import annotations

import uuid
from typing import Any

from ...adapters.blob_store import ROLE
from ...errors import AksrunError, ConfigError, StoreError
from ..context import Context
from ..model import Outcome
from ..scope import add_user_command, person
from ..text import one_line

PROBE_PREFIX = ".aksrun-doctor"


def open_probe_store(context: Context) -> Any:
    """The configured store; an Azure one with retries bounded by the check's deadline (a
    job's store rides out minutes of outage, a doctor must answer now)."""
    config = context.config
    url = config.store_url
    if url.startswith("az://"):
        from ...adapters.blob_store import BlobStore

        return BlobStore.from_url(url, config, retry_total=1, retry_backoff=0.2,
                                  retry_window=max(1.0, context.timeout / 2))
    from ...core.backends import open_store

    return open_store(url, config)


def check_store(context: Context) -> Outcome:
    config = context.config
    url = config.store_url
    try:
        store = open_probe_store(context)
    except AksrunError as exc:
        return Outcome.fail(one_line(exc), "set AZURE_STORAGE_ACCOUNT (or "
                            "AKSRUN_STORAGE_ACCOUNT_URL) and AKSRUN_STORE as README describes.",
                            store=url)
    where = getattr(store, "account_url", None)
    try:
        missing = _missing_container(store)
        if missing:
            return Outcome.fail(
                f"container {store.container!r} does not exist in {where}",
                f"ask your admin to run {add_user_command(config)}, which creates container "
                f"{store.container}, or set AKSRUN_STORE to yours.", store=url, account=where)
        key = f"{PROBE_PREFIX}/probe-{uuid.uuid4().hex}"
        data = f"aksrun doctor {uuid.uuid4()}".encode()
        store.put(key, data)
        try:
            back = bytes(store.get(key))
        finally:
            store.delete(key)
        if back != data:
            return Outcome.fail(f"{url}: read back other bytes than written",
                                "check for a proxy or another writer rewriting the store.",
                                store=url)
    except StoreError as exc:
        return _store_failure(exc, store, config, url)
    except (ConfigError, OSError) as exc:  # a local store's directory that can't be used
        return Outcome.fail(f"{url}: {one_line(exc)}", "make that directory writable, or set "
                            "AKSRUN_STORE (or AKSRUN_HOME) to one that is.", store=url)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    return Outcome.ok(f"{url}: write, read and delete work" + (f" ({where})" if where else ""),
                      store=url, account=where)


def _missing_container(store: Any) -> bool:
    """Whether an Azure store's container is missing: asked first, because a write would
    create it (and doctor must report, not repair)."""
    container = getattr(store, "_container", None)  # BlobStore's ContainerClient
    if container is None:
        return False
    from azure.core.exceptions import HttpResponseError

    try:
        return not container.exists()
    except HttpResponseError as exc:
        if exc.status_code == 403:  # may not read the container's properties: let the
            return False  # probe's write say what is allowed
        raise _as_store_error(exc, store) from exc


def _as_store_error(exc: Any, store: Any) -> StoreError:
    error = StoreError(f"{store.url}: HTTP {exc.status_code} {_code(exc) or ''}")
    error.__context__ = exc
    return error


def _store_failure(exc: StoreError, store: Any, config: Any, url: str) -> Outcome:
    cause = exc.__cause__ or exc.__context__
    status = getattr(cause, "status_code", None)
    code = _code(cause) if cause is not None else None
    container = getattr(store, "container", None)
    details = {"store": url, "status": status, "code": code}
    if code in ("AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch") or (
            status == 403 and getattr(store, "_credential", None) is not None):
        return Outcome.fail(
            f"{url}: you may not write to container {container} ({code or status})",
            f"ask your admin for {ROLE} on container {container} (`aksrun admin add-user "
            f"{person(config)}` grants it; it takes a few minutes to apply).", **details)
    if status in (401, 403):
        return Outcome.fail(
            f"{url}: the storage account refused the key or SAS ({code or status})",
            "check AKSRUN_STORAGE_CONNECTION_STRING, or unset it to sign in with "
            "DefaultAzureCredential.", **details)
    if cause is not None and status is None and _is_auth(cause):
        return Outcome.fail(f"{url}: no Azure token for the storage account: {one_line(exc)}",
                            "sign in with `az login` (see the credential line above).",
                            **details)
    if cause is not None and status is None:
        return Outcome.fail(f"{url}: the storage account did not answer: {one_line(exc)}",
                            "check AZURE_STORAGE_ACCOUNT / AKSRUN_STORAGE_ACCOUNT_URL and your "
                            "network (a firewall or private endpoint?).", **details)
    return Outcome.fail(f"{url}: {one_line(exc)}",
                        "do what the message says, then run `aksrun doctor` again.", **details)


def _is_auth(exc: Any) -> bool:
    from azure.core.exceptions import ClientAuthenticationError

    return isinstance(exc, ClientAuthenticationError)


def _code(exc: Any) -> str | None:
    return getattr(exc, "error_code", None) or None
