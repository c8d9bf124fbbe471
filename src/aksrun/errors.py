"""The exceptions aksrun raises. Every one derives from `AksrunError`, so callers can catch
aksrun's own failures apart from the exceptions their functions raise remotely."""

from __future__ import annotations


class AksrunError(Exception):
    """Base of every error aksrun itself raises."""


class ConfigError(AksrunError, ValueError):
    """An option or setting is invalid; the message names it, its source and the fix."""


class UnsupportedFunctionError(ConfigError, TypeError):
    """The decorated function can't run as a remote call (a generator function): refused at
    decoration, before anything is pickled or written; the message says what to write
    instead."""


class SerializationError(AksrunError):
    """An argument or return value can't be pickled (raised before anything is written)."""


class IntegrityError(AksrunError):
    """An object in the store does not match its recorded sha256 (it is never unpickled), or
    a job record read back from the store is malformed or not the one the job ran with."""


class VersionMismatchError(AksrunError):
    """The runner's Python or cloudpickle differs from the client's: pickles won't survive it."""


class JobFailedError(AksrunError):
    """The job failed for a reason outside the user's function (pod killed, deadline, cancel...)."""


class JobCancelledError(JobFailedError):
    """The job was cancelled before this call finished."""


class CallTimeoutError(AksrunError, TimeoutError):
    """A call ran longer than its `timeout=`. Also a builtin `TimeoutError`."""


class CallCrashedError(AksrunError):
    """A call ended the process running it (a segfault in native code, `os._exit()`, a
    signal) before returning: it fails as itself, naming its call index and the signal or exit
    code, and the other calls of its task keep their values."""


class CallOutOfMemoryError(CallCrashedError):
    """A call went over its `memory=` limit and was OOM-killed (as the kernel does on AKS).
    Not a builtin MemoryError: that is what a call raises itself when an allocation fails,
    and it can catch that; this one it could not."""


class RemoteError(AksrunError):
    """A remote exception that could not be re-created locally: its type, message and traceback.

    Raised when the exception's class can't be unpickled here (defined only remotely) or the
    exception itself would not pickle on the runner.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self):
        return (RemoteError, (self.type_name, self.message, self.traceback_text))

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.message}"
        if self.traceback_text:
            text += "\n\nRemote traceback:\n" + self.traceback_text.rstrip()
        return text


class StoreError(AksrunError):
    """The store refused or failed an operation; the message says which object and why."""


class StoreAccessError(StoreError):
    """The identity in use can't sign in, or may not touch the container: retrying won't help
    until someone changes a role, a federated credential or a setting."""


class ObjectNotFoundError(StoreError, KeyError):
    """No object at that key in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class UnknownJobError(AksrunError, LookupError):
    """No job with that id in this store or on this compute."""


class ImageBuildError(AksrunError):
    """An image could not be found or built; raised before any Job is created.

    `log_lines` are the build log's lines that explain it (pip's errors, the failing step),
    and `run_id` the ACR Tasks run, for `az acr task logs --run-id`.
    """

    def __init__(self, message: str, *, run_id: str | None = None,
                 log_lines: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.log_lines = tuple(log_lines)

    def __reduce__(self):
        return (_rebuild_image_error, (type(self), str(self), self.run_id, self.log_lines))


def _rebuild_image_error(cls, message, run_id, log_lines):
    return cls(message, run_id=run_id, log_lines=log_lines)


class RegistryNotFoundError(ImageBuildError):
    """The configured Azure Container Registry does not exist where the settings say."""


class RegistryPermissionError(ImageBuildError):
    """The signed-in identity may not read the registry or run ACR Tasks on it."""


class RegistryUnreachableError(ImageBuildError):
    """The registry's login server did not answer (wrong name, private endpoint, network)."""


class TasksNotAllowedError(ImageBuildError):
    """ACR Tasks refused the subscription (free and trial subscriptions can't run them)."""


class BaseImageNotFoundError(ImageBuildError):
    """The build's base image could not be pulled."""


class ImageBuildTimeoutError(ImageBuildError, TimeoutError):
    """The build ran out of its time limit (ACR Tasks status Timeout)."""


class RequirementsError(ImageBuildError):
    """pip could not install the requirements (not found, conflicting, failed to build)."""
