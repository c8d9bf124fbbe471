"""Per-function options (`@aksrun.function(...)`), validated when the function is decorated."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .quantities import parse_cpu, parse_duration, parse_memory

# Short names for common AKS GPU VM sizes; any Azure VM size ("Standard_D8s_v5") is accepted too.
NODE_TYPE_ALIASES = {
    "gpu-t4": "Standard_NC4as_T4_v3",
    "gpu-v100": "Standard_NC6s_v3",
    "gpu-a10": "Standard_NV36ads_A10_v5",
    "gpu-a100": "Standard_NC24ads_A100_v4",
    "gpu-h100": "Standard_NC40ads_H100_v5",
}
_VM_SIZE = re.compile(r"^(Standard|Basic)_[A-Za-z0-9_-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = ("AKSRUN_", "JOB_COMPLETION_INDEX")
# Set in the pod by workload identity (and aksrun): another value would sign the pod in as
# someone else, or through the node's identity.
_IDENTITY_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                 "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "AZURE_CLIENT_SECRET",
                 "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                 "AZURE_USERNAME", "AZURE_PASSWORD", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\], ]*([<>=!~;@ ].*)?$")


@dataclasses.dataclass(frozen=True)
class FunctionOptions:
    """Validated, canonical options of one remote function."""

    cpu: str = "1"
    memory: str = "1Gi"
    timeout: float | None = None
    retries: int = 0
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    requirements: tuple[str, ...] = ()
    node_type: str | None = None
    gpu: int = 0
    spot: bool = False
    image: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["env"] = dict(self.env)
        data["requirements"] = list(self.requirements)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionOptions:
        return make_options(**dict(data))

    def replace(self, **changes: Any) -> FunctionOptions:
        return make_options(**{**self.to_dict(), **changes})


def make_options(
    cpu: str | int | float = "1",
    memory: str | int = "1Gi",
    timeout: str | int | float | None = None,
    retries: int = 0,
    env: Mapping[str, str] | None = None,
    requirements: Sequence[str] | None = None,
    node_type: str | None = None,
    gpu: int = 0,
    spot: bool = False,
    image: str | None = None,
    name: str | None = None,
) -> FunctionOptions:
    """Validate every option, naming the bad one, its value and the accepted form."""
    _check_types(cpu=cpu, memory=memory, timeout=timeout, retries=retries, env=env,
                 requirements=requirements, node_type=node_type, gpu=gpu, spot=spot,
                 image=image, name=name)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 100:
        raise ConfigError(f"retries={retries!r} is not valid; use a whole number from 0 to 100.")
    if not isinstance(gpu, int) or isinstance(gpu, bool) or not 0 <= gpu <= 16:
        raise ConfigError(f"gpu={gpu!r} is not valid; use a whole number of GPUs from 0 to 16.")
    if not isinstance(spot, bool):
        raise ConfigError(f"spot={spot!r} is not valid; use True or False.")
    if name is not None and not name.strip():
        raise ConfigError(f"name={name!r} is not valid; use a non-empty name, e.g. \"train\".")
    return FunctionOptions(
        cpu=parse_cpu(cpu),
        memory=parse_memory(memory),
        timeout=_check_timeout(timeout),
        retries=retries,
        env=_check_env(env),
        requirements=_check_requirements(requirements),
        node_type=_check_node_type(node_type),
        gpu=gpu,
        spot=spot,
        image=_check_image(image),
        name=name,
    )


OPTION_NAMES = ("cpu", "memory", "timeout", "retries", "env", "requirements", "node_type", "gpu",
                "spot", "image", "name")


def options_from(options: Mapping[str, Any]) -> FunctionOptions:
    """`make_options` for user keywords: an unknown name is a ConfigError naming it, with
    the closest valid name."""
    import difflib

    for key in options:
        if key not in OPTION_NAMES:
            close = difflib.get_close_matches(key, OPTION_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{key!r} is not an aksrun.function option{hint}; the options are: "
                f"{', '.join(OPTION_NAMES)}."
            )
    return make_options(**options)


# The accepted Python types of each option and an example of a valid value: a value of
# another type (a list, an object, a float number of bytes) is refused here, by name, instead
# of failing later inside a parser or at submission.
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "cpu": ((str, int, float), 'cpu="500m" or cpu=2'),
    "memory": ((str, int), 'memory="4Gi" (or a whole number of bytes)'),
    "timeout": ((str, int, float), 'timeout="30m" or timeout=90 (seconds)'),
    "retries": ((int,), "retries=2"),
    "env": ((Mapping,), 'env={"LOG_LEVEL": "debug"}'),
    "requirements": ((list, tuple), 'requirements=["numpy>=2"]'),
    "node_type": ((str,), 'node_type="Standard_D8s_v5" or node_type="gpu-t4"'),
    "gpu": ((int,), "gpu=1"),
    "spot": ((bool,), "spot=True"),
    "image": ((str,), 'image="myregistry.azurecr.io/aksrun-runner:py3.12-0.1.0"'),
    "name": ((str,), 'name="train"'),
}
_OPTIONAL = ("timeout", "env", "requirements", "node_type", "image", "name")
# setitimer (the runner's per-call timeout) overflows past ~68 years; a year is already far
# past any job's useful life, and keeps the job's deadline a sane number.
MAX_TIMEOUT = 365 * 86400.0


def _check_types(**values: Any) -> None:
    for option, value in values.items():
        if value is None and option in _OPTIONAL:
            continue
        types, example = _TYPES[option]
        if (option != "spot" and isinstance(value, bool)) or not isinstance(value, types):
            raise ConfigError(
                f"{option}={value!r} is not valid ({option} can't be of type "
                f"{type(value).__name__}); use e.g. {example}."
            )


def _check_timeout(timeout: str | int | float | None) -> float | None:
    try:
        seconds = parse_duration(timeout, "timeout")
    except OverflowError:
        seconds = math.inf
    if seconds is not None and seconds > MAX_TIMEOUT:
        raise ConfigError(
            f"timeout={timeout!r} is longer than aksrun allows (365 days); use a shorter "
            'duration, e.g. "7d", or None for no per-call limit.'
        )
    return seconds


def resolve_node_type(node_type: str | None) -> str | None:
    """The Azure VM size a node type names (aliases expanded)."""
    if node_type is None:
        return None
    return NODE_TYPE_ALIASES.get(node_type, node_type)


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise ConfigError(f"env={env!r} is not valid; use a dict of names to strings.")
    checked = {}
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ConfigError(
                f"env key {key!r} is not a valid environment variable name; "
                "use letters, digits and underscores, not starting with a digit."
            )
        if key.startswith(_RESERVED_ENV):
            raise ConfigError(f"env key {key!r} is reserved for aksrun itself; rename it.")
        if key in _IDENTITY_ENV:
            raise ConfigError(
                f"env key {key!r} would change who the pod signs in as; pods sign in with "
                "their namespace's workload identity. Give that identity the access instead "
                "(a role assignment), or pass the value under another name.")
        if not isinstance(value, str):
            raise ConfigError(
                f"env[{key!r}]={value!r} is not a string; environment values are text, "
                f"e.g. env={{{key!r}: {str(value)!r}}}."
            )
        checked[key] = value
    return checked


def _check_requirements(requirements: Sequence[str] | None) -> tuple[str, ...]:
    if requirements is None:
        return ()
    if isinstance(requirements, str) or not isinstance(requirements, Sequence):
        raise ConfigError(
            f"requirements={requirements!r} is not valid; use a list of pip requirement "
            'strings, e.g. ["scikit-learn==1.5.2"].'
        )
    for req in requirements:
        if not isinstance(req, str) or not _REQUIREMENT.match(req.strip()):
            raise ConfigError(
                f"requirement {req!r} is not a pip requirement; use e.g. \"numpy>=2\"."
            )
    return tuple(sorted(r.strip() for r in requirements))


def _check_node_type(node_type: str | None) -> str | None:
    if node_type is None:
        return None
    if not isinstance(node_type, str) or not (
        node_type in NODE_TYPE_ALIASES or _VM_SIZE.match(node_type)
    ):
        aliases = ", ".join(sorted(NODE_TYPE_ALIASES))
        raise ConfigError(
            f"node_type={node_type!r} is not valid; use an Azure VM size such as "
            f'"Standard_D8s_v5" or one of: {aliases}.'
        )
    return node_type


def _check_image(image: str | None) -> str | None:
    if image is None:
        return None
    if not isinstance(image, str) or not re.match(r"^[a-z0-9][a-z0-9._/:@-]*$", image):
        raise ConfigError(
            f"image={image!r} is not a valid image reference; use e.g. "
            '"myregistry.azurecr.io/aksrun-runner:py3.12-0.1.0".'
        )
    return image
