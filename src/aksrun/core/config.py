"""Settings, each validated at load with the source it came from.

Precedence: explicit arguments > environment (`AKSRUN_*`, `AZURE_*`) > `.env` (never
overriding the environment; `AKSRUN_DOTENV=0` ignores it) > `[tool.aksrun]` in
pyproject.toml or `aksrun.toml` > defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .quantities import parse_duration

BACKENDS = ("local", "kubernetes", "aks")
# Login names that stand for a machine or a product, not a person (JupyterHub, dev
# containers, Codespaces, CI runners, cloud images).
SHARED_ACCOUNTS = frozenset({"jovyan", "root", "vscode", "codespace", "node", "runner",
                             "user", "ubuntu", "azureuser", "admin", "docker", "app"})

# field -> environment variable
ENV_NAMES = {
    "backend": "AKSRUN_BACKEND",
    "home": "AKSRUN_HOME",
    "store": "AKSRUN_STORE",
    "user": "AKSRUN_USER",
    "max_parallel": "AKSRUN_MAX_PARALLEL",
    "namespace": "AKSRUN_NAMESPACE",
    "image": "AKSRUN_IMAGE",
    "service_account": "AKSRUN_SERVICE_ACCOUNT",
    "storage_account": "AZURE_STORAGE_ACCOUNT",
    "storage_account_url": "AKSRUN_STORAGE_ACCOUNT_URL",
    "storage_connection_string": "AKSRUN_STORAGE_CONNECTION_STRING",
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "AZURE_RESOURCE_GROUP",
    "cluster_name": "AZURE_AKS_CLUSTER_NAME",
    "registry": "AZURE_CONTAINER_REGISTRY",
    "registry_resource_group": "AKSRUN_REGISTRY_RESOURCE_GROUP",
    "registry_login_server": "AKSRUN_REGISTRY_LOGIN_SERVER",
    "registry_audience": "AKSRUN_REGISTRY_AUDIENCE",
    "arm_endpoint": "AKSRUN_ARM_ENDPOINT",
    "arm_audience": "AKSRUN_ARM_AUDIENCE",
    "graph_endpoint": "AKSRUN_GRAPH_ENDPOINT",
    "graph_audience": "AKSRUN_GRAPH_AUDIENCE",
    "base_image": "AKSRUN_BASE_IMAGE",
    "pip_index_url": "AKSRUN_PIP_INDEX_URL",
    "pip_extra_index_url": "AKSRUN_PIP_EXTRA_INDEX_URL",
    "build_timeout": "AKSRUN_BUILD_TIMEOUT",
    "pending_timeout": "AKSRUN_PENDING_TIMEOUT",
    "server_fqdn": "AKSRUN_SERVER_FQDN",
}


@dataclasses.dataclass(frozen=True)
class Config:
    backend: str = "local"
    home: str = "~/.aksrun"
    store: str | None = None
    user: str = ""
    max_parallel: int | None = None
    namespace: str | None = None
    image: str | None = None
    service_account: str = "aksrun"
    storage_account: str | None = None
    storage_account_url: str | None = None
    storage_connection_string: str | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    cluster_name: str | None = None
    registry: str | None = None
    # Where the registry lives when not in `resource_group` (ACR is often shared).
    registry_resource_group: str | None = None
    # The registry's login server; default <registry>.azurecr.io (public cloud). Sovereign
    # clouds (azurecr.us, azurecr.cn) and private endpoints set it.
    registry_login_server: str | None = None
    registry_audience: str = "https://containerregistry.azure.net"
    # Azure Resource Manager: the endpoint and the token audience (they differ behind private
    # links; sovereign clouds change both). The Entra authority is azure-identity's own
    # AZURE_AUTHORITY_HOST.
    arm_endpoint: str = "https://management.azure.com"
    arm_audience: str | None = None
    # Microsoft Graph (admin add-user looks principals up): endpoint and token audience.
    graph_endpoint: str = "https://graph.microsoft.com"
    graph_audience: str | None = None
    # Image builds: the base of the runner image, where pip finds packages, the time limit.
    base_image: str | None = None
    pip_index_url: str | None = None
    pip_extra_index_url: str | None = None
    build_timeout: float = 3600.0
    # How long a Kubernetes job may wait for capacity with none of its pods running before
    # it is failed (seconds). Long: queues, scale-ups and GPU nodes from zero take minutes.
    pending_timeout: float = 1800.0
    # Which API server address the AKS kubeconfig names: "public" for a private cluster with
    # a public FQDN reached from outside its network, "private" from inside (VPN, peering).
    server_fqdn: str | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()

    @property
    def store_url(self) -> str:
        """The store URL in effect: the setting, or the backend's default."""
        if self.store:
            return self.store
        if self.backend == "local":
            return (self.home_path / "store").resolve().as_uri()
        return f"az://aksrun-{self.user}"

    @property
    def effective_namespace(self) -> str:
        return self.namespace or f"aksrun-{self.user}"

    @property
    def login_server(self) -> str | None:
        """The registry's login server: the setting, else `<registry>.azurecr.io`."""
        if self.registry_login_server:
            return self.registry_login_server.lower().rstrip("/")
        if not self.registry:
            return None
        name = self.registry.strip().lower().rstrip("/")
        return name if "." in name or ":" in name else f"{name}.azurecr.io"

    @property
    def registry_name(self) -> str | None:
        """The registry's resource name (ARM), from `registry` given as a name or server."""
        if not self.registry:
            return None
        return self.registry.strip().lower().split(".", 1)[0]

    def source_of(self, field: str) -> str:
        return self.sources.get(field, "default")


def load_config(overrides: Mapping[str, Any] | None = None, cwd: str | None = None) -> Config:
    """Read every source in precedence order and validate the result."""
    here = Path(cwd or os.getcwd())
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    file_values, file_label = _project_file(here)
    for key, value in file_values.items():
        if key not in ENV_NAMES:
            known = ", ".join(sorted(ENV_NAMES))
            raise ConfigError(f"{file_label}: unknown key {key!r}; known keys: {known}.")
        values[key], sources[key] = value, f"{file_label} key {key!r}"

    environ = dict(os.environ)  # before .env is loaded, so sources stay exact
    dotenv_path = here / ".env"
    if dotenv_path.is_file() and environ.get("AKSRUN_DOTENV", "1") != "0":
        for key, value in _load_dotenv_file(dotenv_path).items():
            field = _field_for_env(key)
            if field and value and not environ.get(key):
                values[field], sources[field] = value, f".env ({dotenv_path}) variable {key}"

    for field, env in ENV_NAMES.items():
        if environ.get(env):
            values[field], sources[field] = environ[env], f"environment variable {env}"

    for key, value in (overrides or {}).items():
        if value is not None:
            values[key], sources[key] = value, "argument"

    return _validate(values, sources)


def _load_dotenv_file(path: Path) -> dict[str, str | None]:
    """The file's values, and its variables set in the environment (never overriding it:
    AZURE_* identity variables must reach the SDK). Read once: python-dotenv warns about a
    bad line on every parse, without the file's name; aksrun warns once, naming both."""
    import io

    from dotenv import dotenv_values, load_dotenv

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} could not be read ({exc}); fix the file, or set "
                          "AKSRUN_DOTENV=0 to ignore it.") from None
    _warn_unparsed_lines(path, text)
    with _quiet_dotenv():
        values = dotenv_values(stream=io.StringIO(text))
        load_dotenv(stream=io.StringIO(text), override=False)
    return values


_warned_dotenv: set[tuple[str, int]] = set()


def _warn_unparsed_lines(path: Path, text: str) -> None:
    """One warning per file content and process (load_config runs on every call)."""
    import io
    import logging

    from dotenv.parser import parse_stream

    key = (str(path), hash(text))
    if key in _warned_dotenv:
        return
    _warned_dotenv.add(key)
    bad = [b.original.line for b in parse_stream(io.StringIO(text)) if b.error]
    if bad:
        lines = ", ".join(str(n) for n in bad)
        logging.getLogger("aksrun").warning(
            "%s: line%s %s could not be parsed and %s ignored; write each setting as "
            "KEY=value (quote values that hold spaces or '#').",
            path, "s" * (len(bad) > 1), lines, "are" if len(bad) > 1 else "is")


@contextlib.contextmanager
def _quiet_dotenv() -> Iterator[None]:
    """Drops python-dotenv's own unparsed-line warnings while aksrun parses (aksrun has said
    it once already, with the file's name)."""
    import logging

    def drop(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("python-dotenv could not parse")

    logger = logging.getLogger("dotenv.main")
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _field_for_env(name: str) -> str | None:
    for field, env in ENV_NAMES.items():
        if env == name:
            return field
    return None


def _project_file(here: Path) -> tuple[dict[str, Any], str]:
    for folder in (here, *here.parents):
        standalone = folder / "aksrun.toml"
        if standalone.is_file():
            return _read_toml(standalone, None), str(standalone)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject, ("tool", "aksrun"))
            if table:
                return table, f"{pyproject} [tool.aksrun]"
            return {}, ""
    return {}, ""


# Parsed TOML files by path, kept while the file's size and modification time stay: every
# call or map reads the configuration again (an edit between two calls counts), and parsing a
# project's pyproject.toml each time cost a map about a millisecond.
_parsed: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _read_toml(path: Path, table: tuple[str, ...] | None) -> dict[str, Any]:
    try:
        stat = path.stat()
        seen = (stat.st_mtime_ns, stat.st_size)
        cached = _parsed.get(path)
        if cached is not None and cached[0] == seen:
            data = cached[1]
        else:
            data = tomllib.loads(path.read_text())
            _parsed[path] = (seen, data)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} could not be read as TOML: {exc}. Fix the file's syntax.")
    for key in table or ():
        data = data.get(key, {})
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{'.'.join(table or ())}] must be a table.")
    return dict(data)  # the cached table stays as parsed


def _validate(values: dict[str, Any], sources: dict[str, str]) -> Config:
    def where(field: str) -> str:
        return sources.get(field, "default")

    for field, value in list(values.items()):
        if field in _TEXT_FIELDS and value is not None and not isinstance(value, str):
            raise ConfigError(
                f"{field} {value!r} (from {where(field)}) must be text; quote it, "
                f'e.g. {field} = "{value}".'
            )
    if "backend" not in values:
        values["backend"] = "aks" if values.get("cluster_name") else "local"
    backend = str(values["backend"]).strip().lower()
    if backend not in BACKENDS:
        raise ConfigError(
            f"backend {values['backend']!r} (from {where('backend')}) is not valid; "
            f"use one of: {', '.join(BACKENDS)}."
        )
    values["backend"] = backend

    if values.get("max_parallel") is not None:
        raw = values["max_parallel"]
        try:
            number = int(raw)
            if number < 1 or str(raw).strip() not in (str(number), f"{number}"):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(
                f"max_parallel {raw!r} (from {where('max_parallel')}) is not valid; "
                "use a whole number of at least 1."
            ) from None
        values["max_parallel"] = number

    if values.get("server_fqdn") is not None:
        fqdn = str(values["server_fqdn"]).strip().lower()
        if fqdn not in ("public", "private"):
            raise ConfigError(f"server_fqdn {values['server_fqdn']!r} (from "
                              f"{where('server_fqdn')}) is not valid; use public or private.")
        values["server_fqdn"] = fqdn

    if values.get("build_timeout") is not None:
        try:
            timeout = parse_duration(values["build_timeout"], "build_timeout")
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {where('build_timeout')})") from None
        if not 300 <= (timeout or 0) <= 28800:
            raise ConfigError(f"build_timeout {values['build_timeout']!r} (from "
                              f"{where('build_timeout')}) is outside what ACR Tasks allows; "
                              'use 5 minutes to 8 hours, e.g. AKSRUN_BUILD_TIMEOUT="1h".')
        values["build_timeout"] = timeout

    for key in ("arm_endpoint", "arm_audience", "registry_audience", "pip_index_url",
                "pip_extra_index_url", "graph_endpoint", "graph_audience"):
        value = values.get(key)
        if value is not None and not re.match(r"^https?://[^\s/]+", str(value)):
            raise ConfigError(f"{key} {value!r} (from {where(key)}) is not a URL; use e.g. "
                              f"{ENV_NAMES[key]}=https://host[/path].")
        if value is not None:
            values[key] = str(value).rstrip("/") if key != "pip_index_url" else str(value)

    if values.get("pending_timeout") is not None:
        try:
            values["pending_timeout"] = parse_duration(values["pending_timeout"],
                                                       "pending_timeout")
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {where('pending_timeout')})") from None
        if not values["pending_timeout"]:
            raise ConfigError(f"pending_timeout (from {where('pending_timeout')}) must be "
                              'longer than zero, e.g. AKSRUN_PENDING_TIMEOUT="30m".')

    user = values.get("user")
    if not user:
        user = _default_user()
        # The user names the default namespace and container: a shared login name would
        # put everyone's jobs together (unless both are given explicitly).
        shared = user in SHARED_ACCOUNTS and not (values.get("namespace")
                                                  and values.get("store"))
        if backend != "local" and shared and _cluster_settings_complete(backend, values):
            raise ConfigError(
                f"the login name here is {user!r}, which many people share (notebook servers, "
                "dev containers, CI): on a cluster it would put everyone's jobs in one "
                "namespace. Set AKSRUN_USER to your own short name, e.g. AKSRUN_USER=alice "
                "(your admin's `aksrun admin add-user` name).")
    slugged = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", str(user).lower()))
    slugged = slugged.strip("-")[:40].strip("-")
    if not slugged:
        raise ConfigError(
            f"user {user!r} (from {where('user')}) has no letters or digits; "
            "set AKSRUN_USER to a short name such as 'alice'."
        )
    values["user"] = slugged

    store = values.get("store")
    if store is not None:
        store = str(store)
        if not (store.startswith("file://") or store.startswith("az://") or store.startswith("/")):
            raise ConfigError(
                f"store {store!r} (from {where('store')}) is not a store URL; use "
                "file:///absolute/dir or az://container[/prefix]."
            )
        if store.startswith("/"):
            store = Path(store).resolve().as_uri()
        values["store"] = store

    if backend == "aks":
        missing = [
            ENV_NAMES[f] for f in ("subscription_id", "resource_group", "cluster_name")
            if not values.get(f)
        ]
        if missing:
            raise ConfigError(
                f"backend 'aks' (from {where('backend')}) needs {', '.join(missing)}; set "
                "them in the environment or .env (see .env.example), or use AKSRUN_BACKEND=local."
            )

    for field in ("namespace",):
        value = values.get(field)
        if value is not None and not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", value):
            raise ConfigError(
                f"{field} {value!r} (from {where(field)}) is not a valid Kubernetes name; use "
                "lowercase letters, digits and '-', at most 63 characters."
            )
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}.")
    return Config(**values, sources=dict(sources))


_TEXT_FIELDS = {"backend", "home", "store", "user", "namespace", "image", "service_account",
                "storage_account", "storage_account_url", "storage_connection_string",
                "subscription_id", "resource_group", "cluster_name", "registry",
                "registry_resource_group", "registry_login_server", "registry_audience",
                "arm_endpoint", "arm_audience", "base_image", "pip_index_url",
                "pip_extra_index_url", "server_fqdn", "graph_endpoint", "graph_audience"}


def _cluster_settings_complete(backend: str, values: dict[str, Any]) -> bool:
    """Whether the AKS settings are all there (else their own error, which comes first)."""
    return backend != "aks" or all(values.get(f) for f in
                                   ("subscription_id", "resource_group", "cluster_name"))


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "user"
