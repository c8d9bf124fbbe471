"""Request bodies checked against the Azure SDK's own versioned models.

Each `azure-mgmt-*` package ships, per api-version, the request/response models generated
from the service's REST spec: their `_attribute_map` (REST names and types, flattened
`properties.x` keys), `_validation` (required, minimum/maximum, lengths, patterns, read-only)
and polymorphism (`_subtype_map`, e.g. `RunRequest` by `type`). Validating a body with the
models of the api-version it was sent with catches what the real service would refuse without
the fake restating the spec. Enum fields are typed `str` in `_attribute_map`; their allowed
values come from the enum named in the model's `__init__` annotations.

Shape and type errors are answered as ARM answers undeserializable JSON
(`InvalidRequestContent`); constraint errors as `BadRequest` naming the field (`target`) with
every problem in `details`. `render()` goes the other way: it passes a stored resource through
the models of the requested api-version, so an answer only has the fields that version knows.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

from . import errors

_MODEL_REF = re.compile(r"_models\.(\w+)")
_FLATTEN = re.compile(r"(?<!\\)\.")


@dataclass(frozen=True)
class Problem:
    """One reason a body is refused: where (a JSON path) and why."""

    path: str
    message: str
    shape: bool = False  # a type/shape error (undeserializable) rather than a broken rule

    def detail(self) -> dict[str, str]:
        code = "InvalidRequestContent" if self.shape else "BadRequest"
        return {"code": code, "message": self.message, "target": self.path}


def sdk_models(package: str, api_version: str) -> ModuleType:
    """The models module of `package` for exactly this api-version (LookupError if absent)."""
    name = f"{package}.v{api_version.replace('-', '_')}.models"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise LookupError(f"{package} has no models for api-version {api_version}") from exc


def parse_json(raw: bytes) -> Any:
    """The request's JSON, or ARM's InvalidRequestContent for text that isn't JSON."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid_request_content(f"{exc}. Path '', line 1") from exc


def problems(models: ModuleType, model_name: str, data: Any) -> list[Problem]:
    """Everything wrong with `data` as a `model_name` of this models module (empty: fine)."""
    found: list[Problem] = []
    _check_model(_classes(models), _class(models, model_name), data, "", found)
    return found


def validate_body(models: ModuleType, model_name: str, data: Any) -> Any:
    """The body as an SDK model instance, or the service's 400 as ArmError."""
    if data is None:
        raise errors.invalid_request_content("The request body is missing")
    found = problems(models, model_name, data)
    if found:
        first = found[0]
        if first.shape:
            raise errors.invalid_request_content(f"{first.message} Path '{first.path}'")
        raise errors.ArmError(
            400, "BadRequest", first.message, target=first.path,
            details=[p.detail() for p in found],
        )
    return _deserializer(models)(model_name, data)


def render(models: ModuleType, model_name: str, resource: dict[str, Any]) -> dict[str, Any]:
    """A stored resource (REST JSON) as this api-version shows it: unknown fields dropped."""
    instance = _deserializer(models)(model_name, resource)
    return instance.serialize(keep_readonly=True)


# ---- the walk ---------------------------------------------------------------------------------


def _check_model(
    classes: dict[str, type], cls: type, data: Any, path: str, found: list[Problem]
) -> None:
    if not isinstance(data, dict):
        found.append(Problem(path or "$", f"Expected an object for {cls.__name__}.", True))
        return
    cls = _classify(classes, cls, data, path, found)
    if cls is None:
        return
    rules: dict[str, dict[str, Any]] = getattr(cls, "_validation", {})
    enums = _enum_fields(cls)
    for attr, desc in cls._attribute_map.items():
        key = desc["key"]
        if attr == "additional_properties" or not key:
            continue
        rule = rules.get(attr, {})
        if rule.get("readonly"):
            continue  # ARM ignores read-only fields sent in a request
        value = _extract(data, key)
        where = _join(path, _rest_path(key))
        if value is None:
            if rule.get("required"):
                found.append(Problem(where, f"The {where} field is required."))
            continue
        before = len(found)
        _check_value(classes, desc["type"], value, where, found)
        if len(found) == before:
            _check_rules(rule, value, where, found)
            if attr in enums:
                _check_enum(enums[attr], value, where, found)


def _classify(
    classes: dict[str, type], cls: type, data: dict, path: str, found: list[Problem]
) -> type | None:
    """The concrete subclass a polymorphic body names in its discriminator."""
    subtypes = cls.__dict__.get("_subtype_map") or {}
    for attr, mapping in subtypes.items():
        rest_key = _FLATTEN.split(cls._attribute_map[attr]["key"])[-1]
        where = _join(path, rest_key)
        value = data.get(rest_key)
        if value is None:
            found.append(Problem(where, f"The {where} field is required."))
            return None
        if value == cls.__name__:
            return cls
        if value not in mapping:
            allowed = ", ".join(sorted(mapping))
            found.append(Problem(
                where, f"The value '{value}' of {where} is not a known {cls.__name__} type. "
                f"The allowed values are: {allowed}.",
            ))
            return None
        return classes[mapping[value]]
    return cls


def _check_value(
    classes: dict[str, type], type_name: str, value: Any, path: str, found: list[Problem]
) -> None:
    if type_name.startswith("[") and type_name.endswith("]"):
        if not isinstance(value, list):
            found.append(Problem(path, f"Expected an array for {path}.", True))
            return
        for i, item in enumerate(value):
            if item is not None:
                _check_value(classes, type_name[1:-1], item, f"{path}[{i}]", found)
        return
    if type_name.startswith("{") and type_name.endswith("}"):
        if not isinstance(value, dict):
            found.append(Problem(path, f"Expected an object for {path}.", True))
            return
        for k, item in value.items():
            if item is not None:
                _check_value(classes, type_name[1:-1], item, _join(path, k), found)
        return
    if type_name in classes and isinstance(classes[type_name], type):
        target = classes[type_name]
        if issubclass(target, enum.Enum):
            _check_enum(target, value, path, found)
        elif hasattr(target, "_attribute_map"):
            _check_model(classes, target, value, path, found)
        return
    expected = _BASIC.get(type_name)
    if expected is not None and not expected(value):
        found.append(Problem(
            path, f"Could not convert {json.dumps(value)} to {type_name} for {path}.", True
        ))


_BASIC = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "iso-8601": lambda v: isinstance(v, str),
    "rfc-1123": lambda v: isinstance(v, str),
    "duration": lambda v: isinstance(v, str),
    "date": lambda v: isinstance(v, str),
    "time": lambda v: isinstance(v, str),
    "base64": lambda v: isinstance(v, str),
    "bytearray": lambda v: isinstance(v, str),
    "unix-time": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def _check_rules(rule: dict[str, Any], value: Any, path: str, found: list[Problem]) -> None:
    low, high = rule.get("minimum"), rule.get("maximum")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and ((low is not None and value < low) or (high is not None and value > high)):
        if low is not None and high is not None:
            found.append(Problem(path, f"The field {path} must be between {low} and {high}."))
        elif low is not None:
            found.append(Problem(path, f"The field {path} must be at least {low}."))
        else:
            found.append(Problem(path, f"The field {path} must be at most {high}."))
    if isinstance(value, str):
        if "min_length" in rule and len(value) < rule["min_length"]:
            found.append(Problem(
                path, f"The field {path} must be a string with a minimum length of "
                f"{rule['min_length']}.",
            ))
        if "max_length" in rule and len(value) > rule["max_length"]:
            found.append(Problem(
                path, f"The field {path} must be a string with a maximum length of "
                f"{rule['max_length']}.",
            ))
        if "pattern" in rule and re.search(rule["pattern"], value) is None:
            found.append(Problem(
                path, f"The field {path} must match the regular expression '{rule['pattern']}'."
            ))
    if isinstance(value, list):
        if "min_items" in rule and len(value) < rule["min_items"]:
            found.append(Problem(path, f"The field {path} needs {rule['min_items']}+ items."))
        if "max_items" in rule and len(value) > rule["max_items"]:
            found.append(Problem(path, f"The field {path} takes at most {rule['max_items']}."))


def _check_enum(enum_cls: type[enum.Enum], value: Any, path: str, found: list[Problem]) -> None:
    values = [str(member.value) for member in enum_cls]
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str) or item.lower() not in {v.lower() for v in values}:
            found.append(Problem(
                path, f"The value '{item}' is not valid for {path}. The allowed values are: "
                f"{', '.join(values)}.",
            ))


# ---- model introspection ----------------------------------------------------------------------


@lru_cache(maxsize=64)
def _classes(models: ModuleType) -> dict[str, type]:
    return {name: value for name, value in vars(models).items() if isinstance(value, type)}


def _class(models: ModuleType, model_name: str) -> type:
    try:
        return _classes(models)[model_name]
    except KeyError as exc:
        raise LookupError(f"{models.__name__} has no model {model_name}") from exc


@lru_cache(maxsize=512)
def _enum_fields(cls: type) -> dict[str, type[enum.Enum]]:
    """attribute -> Enum, read from `__init__` annotations like `Union[str, "_models.OS"]`."""
    module = importlib.import_module(cls.__module__.rsplit(".", 1)[0])  # the models package
    found: dict[str, type[enum.Enum]] = {}
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return found
    for parameter in parameters:
        for name in _MODEL_REF.findall(str(parameter.annotation)):
            candidate = getattr(module, name, None)
            if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
                found[parameter.name] = candidate
    return found


@lru_cache(maxsize=64)
def _deserializer(models: ModuleType):  # -> the package's own _utils.serialization.Deserializer
    package = models.__name__.rsplit(".", 1)[0]
    try:
        serialization = importlib.import_module(f"{package}._utils.serialization")
    except ModuleNotFoundError:
        serialization = importlib.import_module(f"{package}._serialization")
    return serialization.Deserializer(_classes(models))


def _extract(data: dict, key: str) -> Any:
    value: Any = data
    for part in _FLATTEN.split(key):
        if not isinstance(value, dict):
            return None
        value = value.get(part.replace("\\.", "."))
    return value


def _rest_path(key: str) -> str:
    return ".".join(p.replace("\\.", ".") for p in _FLATTEN.split(key))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
