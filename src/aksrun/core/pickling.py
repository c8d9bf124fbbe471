"""What travels: the function (by value when it is the user's own code), the calls, the results.

Every argument and return value is checked for picklability before anything is written, and a
failure names the argument (or the call's return value) and why.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import RemoteError, SerializationError
from .envelope import Payload, dumps

Call = tuple[tuple[Any, ...], dict[str, Any]]
_registered: set[str] = set()


def dump_function(func: Callable[..., Any]) -> Payload:
    """Pickle a function; modules of the user's own project travel by value."""
    register_project_modules()
    name = getattr(func, "__qualname__", repr(func))
    return dumps(func, what=f"function {name}()")


def dump_calls(calls: Sequence[Call], first_index: int, func_name: str) -> Payload:
    """Pickle one chunk of calls; on failure find and name the argument that won't pickle."""
    try:
        return dumps(list(calls), what="arguments")
    except SerializationError as exc:
        for offset, (args, kwargs) in enumerate(calls):
            for label, value in _arguments(args, kwargs):
                try:
                    dumps(value)
                except SerializationError as inner:
                    many = len(calls) > 1 or first_index
                    where = f" of call {first_index + offset}" if many else ""
                    cause = str(inner).split(": ", 1)[-1]
                    raise SerializationError(
                        f"argument {label}{where} to {func_name}() could not be pickled: {cause}. "
                        "Pass data that pickles (plain values, arrays, dataclasses), or create "
                        "the object inside the function. Nothing was uploaded."
                    ) from inner.__cause__
        raise exc


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]):
    for i, value in enumerate(args):
        yield f"#{i} (positional)", value
    for key, value in kwargs.items():
        yield f"{key!r}", value


def register_project_modules() -> None:
    """Register the user's own modules (not stdlib, not installed packages) by value.

    A pod has the user's packages installed but not their source tree, so code from the
    project has to travel inside the pickle; installed packages travel by reference.
    """
    import cloudpickle

    for top in _project_top_modules():
        if top in _registered:
            continue
        module = sys.modules.get(top)
        if module is None:
            continue
        try:
            cloudpickle.register_pickle_by_value(module)
            _registered.add(top)
        except (ValueError, TypeError):
            continue


@functools.cache
def _installed_paths() -> frozenset[str]:
    """Where the standard library and installed packages live: fixed for the interpreter's
    life, and sysconfig takes a millisecond to say so (it expands its schemes each time)."""
    paths = sysconfig.get_paths()
    return frozenset(
        os.path.realpath(p)
        for p in {paths.get("stdlib"), paths.get("platstdlib"), paths.get("purelib"),
                  paths.get("platlib"), sys.base_prefix, sys.prefix}
        if p
    )


def _project_top_modules() -> set[str]:
    tops: set[str] = set()
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if top in tops or top in ("__main__", "aksrun") or top in sys.stdlib_module_names:
            continue
        path = getattr(module, "__file__", None)
        if path and _in_project(path):
            tops.add(top)
    return tops


@functools.cache
def _in_project(path: str) -> bool:
    """Whether a module's file is the user's own (not aksrun's, the standard library's or an
    installed package's). Kept per file: every submission asks again for every module
    loaded, and resolving symlinks costs a system call per path component."""
    real = os.path.realpath(path)
    aksrun_root = os.path.realpath(os.path.dirname(os.path.dirname(__file__)))
    if real.startswith(aksrun_root) or any(real.startswith(p + os.sep)
                                           for p in _installed_paths()):
        return False
    return "site-packages" not in real and "dist-packages" not in real


# --- results -------------------------------------------------------------------------------

OK, ERR = "ok", "err"
# A traceback pickles as objects nested one level per frame: a few hundred frames overflow
# the pickler's recursion limit (a RecursionError carries ~1,000), and the exception would
# come back as a RemoteError. Past this many frames the middle ones are left out.
MAX_TRACEBACK_FRAMES = 100
_HEAD_FRAMES = 10  # kept from the start (where the call began); the rest from the end


def exception_record(exc: BaseException) -> tuple[str, bytes | None, str, str, str]:
    """An exception as it travels: pickled with its traceback when possible, text always."""
    import cloudpickle
    from tblib import pickling_support

    trim_tracebacks(exc)
    tb_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    try:
        pickling_support.install(exc)
        blob = cloudpickle.dumps(exc, protocol=5)
    except Exception:
        blob = None
    return (ERR, blob, type_name, str(exc), tb_text)


def trim_tracebacks(exc: BaseException) -> None:
    """Cut every traceback in the exception's chain to MAX_TRACEBACK_FRAMES (its first and
    last frames), with a note saying how many were left out, so it pickles."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        _trim(current)
        todo += [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            todo += list(current.exceptions)


def _trim(exc: BaseException) -> None:
    import types

    nodes = []
    tb = exc.__traceback__
    while tb is not None:
        nodes.append(tb)
        tb = tb.tb_next
    if len(nodes) <= MAX_TRACEBACK_FRAMES:
        return
    tail = MAX_TRACEBACK_FRAMES - _HEAD_FRAMES
    trimmed = None
    for node in reversed(nodes[:_HEAD_FRAMES] + nodes[-tail:]):
        trimmed = types.TracebackType(trimmed, node.tb_frame, node.tb_lasti, node.tb_lineno)
    exc.__traceback__ = trimmed
    exc.add_note(
        f"(aksrun: the remote traceback had {len(nodes)} frames; "
        f"{len(nodes) - MAX_TRACEBACK_FRAMES} in the middle were trimmed so it could travel "
        f"back: the first {_HEAD_FRAMES} and the last {tail} are shown)"
    )


def outcome_exception(record: tuple[Any, ...]) -> BaseException:
    """Re-create a remote exception as its own type, or a RemoteError carrying its text."""
    import pickle

    _, blob, type_name, message, tb_text = record
    if blob is not None:
        try:
            exc = pickle.loads(blob)
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    return RemoteError(type_name, message, tb_text)


def remote_frames(tb):
    """Skip the local frames (aksrun's and concurrent.futures') that re-raised a remote
    exception, so a printed traceback starts where the user's code failed."""
    import concurrent.futures

    skip = (os.path.dirname(os.path.dirname(__file__)),
            os.path.dirname(concurrent.futures.__file__))
    first = tb
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(skip):
        tb = tb.tb_next
    return tb or first


# --- remote tracebacks ------------------------------------------------------------------------

_DYNAMIC = "<dynamic-code>"


def restore_filenames(exc: BaseException, module_names: Sequence[str]) -> BaseException:
    """Put real file names back on remote frames of code that travelled by value.

    cloudpickle writes such code with the file name `<dynamic-code>` (so a function's pickle,
    and so its content address, doesn't depend on where it was defined). The client has the
    source: looking the code up by name and line in the function's modules lets the
    traceback show file, line and source text as for a local exception.
    """
    tb = exc.__traceback__
    if tb is None or not _has_dynamic_frame(tb):
        return exc
    from tblib import Traceback

    index = _code_index(module_names)
    wrapped = Traceback(tb)
    node = wrapped
    while node is not None:
        code = node.tb_frame.f_code
        if code.co_filename == _DYNAMIC:
            for filename, first, last in index.get(code.co_name, ()):
                if first <= node.tb_lineno <= last:
                    code.co_filename = filename
                    break
        node = node.tb_next
    exc.__traceback__ = wrapped.as_traceback()
    return exc


def _has_dynamic_frame(tb) -> bool:
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _DYNAMIC:
            return True
        tb = tb.tb_next
    return False


def _code_index(module_names: Sequence[str]) -> dict[str, list[tuple[str, int, int]]]:
    import types

    index: dict[str, list[tuple[str, int, int]]] = {}
    seen: set[int] = set()

    def add_code(code: types.CodeType) -> None:
        if id(code) in seen:
            return
        seen.add(id(code))
        lines = [line for _, _, line in code.co_lines() if line is not None]
        last = max(lines, default=code.co_firstlineno)
        index.setdefault(code.co_name, []).append((code.co_filename, code.co_firstlineno, last))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                add_code(const)

    def add_object(obj: Any, depth: int = 0) -> None:
        obj = getattr(obj, "func", obj) if type(obj).__name__ == "RemoteFunction" else obj
        obj = getattr(obj, "__func__", obj)
        code = getattr(obj, "__code__", None)
        if isinstance(code, types.CodeType):
            add_code(code)
        elif isinstance(obj, type) and depth < 2:
            for value in vars(obj).values():
                add_object(value, depth + 1)
        elif isinstance(obj, property):
            for accessor in (obj.fget, obj.fset, obj.fdel):
                if accessor is not None:
                    add_object(accessor, depth + 1)

    for name in module_names:
        module = sys.modules.get(name)
        if module is not None:
            for value in list(vars(module).values()):
                add_object(value)
    return index
