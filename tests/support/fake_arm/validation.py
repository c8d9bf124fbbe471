"""Request bodies checked against the Azure SDK's own versioned models.

Two generations of generated models are understood: the msrest ones (`_attribute_map`,
`_validation`; azure-mgmt-containerregistry, -msi, -authorization) and the TypeSpec ones of
single-api-version packages (`_utils.model_base.Model` with `rest_field`s; azure-mgmt-
containerservice 41, azure-mgmt-storage 25), whose REST names, read-only visibility, required
fields (annotations without `Optional`) and enums come from the class annotations. TypeSpec
models carry no patterns or ranges, so those rules stay with the provider modules.

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

import datetime as dt
import enum
import importlib
import inspect
import json
import pkgutil
import re
import types
import typing
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


def models_for(package: str, api_version: str, model_name: str) -> ModuleType:
    """The models of `package` for this api-version if the SDK ships them, else those of the
    nearest older version (else the oldest) that has `model_name`: a service serves more
    api-versions than one SDK release carries models for."""
    try:
        models = sdk_models(package, api_version)
        if hasattr(models, model_name):
            return models
    except LookupError:
        pass
    candidates = [v for v in _sdk_versions(package) if hasattr(sdk_models(package, v), model_name)]
    if not candidates:
        raise LookupError(f"{package} has no model {model_name} in any api-version")
    older = [v for v in candidates if _version_key(v) <= _version_key(api_version)]
    return sdk_models(package, older[-1] if older else candidates[0])


@lru_cache(maxsize=16)
def _sdk_versions(package: str) -> tuple[str, ...]:
    module = importlib.import_module(package)
    found = []
    for info in pkgutil.iter_modules(module.__path__):
        match = re.fullmatch(r"v(\d{4})_(\d{2})_(\d{2})(_preview)?", info.name)
        if match:
            found.append("-".join(match.group(1, 2, 3)) + ("-preview" if match[4] else ""))
    return tuple(sorted(found, key=_version_key))


def _version_key(api_version: str) -> tuple[str, int]:
    return api_version[:10], 0 if api_version.lower().endswith("-preview") else 1


def package_models(package: str) -> ModuleType:
    """The models of a single-api-version (TypeSpec) package, e.g. azure.mgmt.storage."""
    return importlib.import_module(f"{package}.models")


def problems(models: ModuleType, model_name: str, data: Any) -> list[Problem]:
    """Everything wrong with `data` as a `model_name` of this models module (empty: fine)."""
    found: list[Problem] = []
    cls = _class(models, model_name)
    if _is_tsp(cls):
        _tsp_check_model(cls, data, "", found)
    else:
        _check_model(_classes(models), cls, data, "", found)
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
    cls = _class(models, model_name)
    if _is_tsp(cls):
        return cls(data)
    return _deserializer(models)(model_name, data)


def render(models: ModuleType, model_name: str, resource: dict[str, Any]) -> dict[str, Any]:
    """A stored resource (REST JSON) as this api-version shows it: unknown fields dropped."""
    cls = _class(models, model_name)
    if _is_tsp(cls):
        return _tsp_render(cls, resource)
    instance = _deserializer(models)(model_name, resource)
    return instance.serialize(keep_readonly=True)


def as_sent(models: ModuleType, model_name: str, resource: dict[str, Any]) -> dict[str, Any]:
    """What a client that read `resource` (GET) and wrote it back unchanged would send: the
    rendered resource without read-only fields. For TypeSpec models only; providers compare a
    PUT body with it to find what the caller changed."""
    cls = _class(models, model_name)
    return _tsp_strip(cls, _tsp_render(cls, resource), readonly=True)


def strip_readonly(models: ModuleType, model_name: str, body: Any) -> Any:
    """A request body without the read-only fields ARM ignores (TypeSpec models)."""
    return _tsp_strip(_class(models, model_name), body, readonly=True)


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


# ---- TypeSpec (model_base) models --------------------------------------------------------------


@dataclass(frozen=True)
class _TspField:
    rest: str
    hint: Any
    readonly: bool
    required: bool
    discriminator: bool


def _is_tsp(cls: type) -> bool:
    return any(
        base.__name__ == "Model" and base.__module__.endswith("model_base") for base in cls.__mro__
    )


@lru_cache(maxsize=1024)
def _tsp_fields(cls: type) -> tuple[_TspField, ...]:
    """The REST fields of a TypeSpec model with their (evaluated) annotations."""
    cls.__new__(cls)  # model_base computes `_attr_to_rest_field` on first instantiation
    module = importlib.import_module(cls.__module__)
    namespace = dict(vars(module))
    namespace["_models"] = importlib.import_module(cls.__module__.rsplit(".", 1)[0])
    hints = typing.get_type_hints(cls, globalns=namespace)
    fields = []
    for attr, rest_field in cls._attr_to_rest_field.items():
        hint = hints.get(attr, Any)
        readonly = list(rest_field._visibility or []) == ["read"]
        optional = _is_optional(hint)
        fields.append(_TspField(
            rest_field._rest_name, _without_none(hint), readonly,
            not optional and not readonly, bool(rest_field._is_discriminator),
        ))
    return tuple(fields)


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


def _without_none(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = tuple(a for a in typing.get_args(hint) if a is not type(None))
        return args[0] if len(args) == 1 else typing.Union[args]  # noqa: UP007
    return hint


def _tsp_concrete(cls: type, data: dict) -> type:
    """The subclass a polymorphic body names in its discriminator (else the class itself)."""
    mapping = getattr(cls, "__mapping__", None)
    if not mapping:
        return cls
    for field in _tsp_fields(cls):
        if field.discriminator and data.get(field.rest) in mapping:
            return mapping[data[field.rest]]
    return cls


def _tsp_check_model(cls: type, data: Any, path: str, found: list[Problem]) -> None:
    if not isinstance(data, dict):
        found.append(Problem(path or "$", f"Expected an object for {cls.__name__}.", True))
        return
    cls = _tsp_concrete(cls, data)
    for field in _tsp_fields(cls):
        where = _join(path, field.rest)
        value = data.get(field.rest)
        if field.readonly:
            continue  # ARM ignores read-only fields sent in a request
        if value is None:
            if field.required:
                found.append(Problem(where, f"The {where} field is required."))
            continue
        _tsp_check_value(field.hint, value, where, found)


def _tsp_check_value(hint: Any, value: Any, path: str, found: list[Problem]) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is typing.Any:
        return
    if origin in (typing.Union, types.UnionType):
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if str in args and enums:  # an extensible enum: str or one of the known values
            if not isinstance(value, str):
                found.append(Problem(path, f"Could not convert {json.dumps(value)} to string "
                                     f"for {path}.", True))
            else:
                _check_enum(enums[0], value, path, found)
            return
        for candidate in args:
            trial: list[Problem] = []
            _tsp_check_value(candidate, value, path, trial)
            if not trial:
                return
        found.append(Problem(path, f"The value {json.dumps(value)} does not fit {path}.", True))
        return
    if origin is typing.Literal:
        if value not in args:
            found.append(Problem(path, f"The value '{value}' is not valid for {path}."))
        return
    if origin is list:
        if not isinstance(value, list):
            found.append(Problem(path, f"Expected an array for {path}.", True))
            return
        for i, item in enumerate(value):
            if item is not None:
                _tsp_check_value(args[0] if args else Any, item, f"{path}[{i}]", found)
        return
    if origin is dict:
        if not isinstance(value, dict):
            found.append(Problem(path, f"Expected an object for {path}.", True))
            return
        for key, item in value.items():
            if item is not None:
                _tsp_check_value(args[1] if len(args) > 1 else Any, item, _join(path, key), found)
        return
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        _check_enum(hint, value, path, found)
        return
    if isinstance(hint, type) and _is_tsp(hint):
        _tsp_check_model(hint, value, path, found)
        return
    basic = {str: "str", bool: "bool", int: "int", float: "float", bytes: "base64",
             dt.datetime: "iso-8601", dt.date: "date", dt.timedelta: "duration",
             dt.time: "time"}.get(hint)
    if basic is not None and not _BASIC[basic](value):
        found.append(Problem(
            path, f"Could not convert {json.dumps(value)} to {basic} for {path}.", True
        ))


def _tsp_render(cls: type, data: Any) -> Any:
    """`data` with only the fields the model (recursively) knows."""
    if not isinstance(data, dict):
        return data
    cls = _tsp_concrete(cls, data)
    shown: dict[str, Any] = {}
    for field in _tsp_fields(cls):
        if field.rest in data:
            shown[field.rest] = _tsp_render_value(field.hint, data[field.rest])
    return shown


def _tsp_render_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and isinstance(value, list):
        return [_tsp_render_value(args[0] if args else Any, v) for v in value]
    if origin is dict and isinstance(value, dict):
        inner = args[1] if len(args) > 1 else Any
        return {k: _tsp_render_value(inner, v) for k, v in value.items()}
    if isinstance(hint, type) and _is_tsp(hint):
        return _tsp_render(hint, value)
    return value


def _tsp_strip(cls: type, data: Any, readonly: bool) -> Any:
    """`data` without read-only fields (recursively); unknown fields are kept."""
    if not isinstance(data, dict):
        return data
    cls = _tsp_concrete(cls, data)
    fields = {f.rest: f for f in _tsp_fields(cls)}
    kept: dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            kept[key] = value
        elif not (readonly and field.readonly):
            kept[key] = _tsp_strip_value(field.hint, value)
    return kept


def _tsp_strip_value(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and isinstance(value, list):
        return [_tsp_strip_value(args[0] if args else Any, v) for v in value]
    if origin is dict and isinstance(value, dict):
        inner = args[1] if len(args) > 1 else Any
        return {k: _tsp_strip_value(inner, v) for k, v in value.items()}
    if isinstance(hint, type) and _is_tsp(hint):
        return _tsp_strip(hint, value, readonly=True)
    return value


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
    root = re.sub(r"\.v\d{4}_\d{2}_\d{2}(_preview)?$", "", package)
    candidates = (f"{package}._utils.serialization", f"{package}._serialization",
                  f"{root}._utils.serialization", f"{root}._serialization")
    for name in candidates:
        try:
            serialization = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        return serialization.Deserializer(_classes(models))
    raise LookupError(f"no msrest serialization module for {models.__name__}")


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
