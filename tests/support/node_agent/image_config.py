"""An image's config applied to a container the way the kubelet and containerd's CRI plugin
do: the command line (`command` replaces the ENTRYPOINT, `args` the CMD), the environment
(the image's Env under the container's), the working directory (the pod's, else WORKDIR),
and the user (runAsUser/runAsGroup over the image's USER, names and groups looked up in the
image's own /etc/passwd and /etc/group, never the node's).
"""

from __future__ import annotations

from .envvars import ConfigError, expand
from .image_store import Image
from .sandbox import Identity


def command_line(container: dict, env: dict[str, str], image: Image) -> list[str]:
    """The kubelet expands $(VAR) in `command`/`args` only; the runtime combines them with
    the image's ENTRYPOINT and CMD."""
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        return command + args
    return list(image.config.entrypoint or []) + (args or list(image.config.cmd or []))


def environment(image: Image) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in image.config.env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _entries(text: str | None) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines()
            if line and not line.startswith("#") and line.count(":") >= 3]


def _lookup_user(image: Image, user: str) -> tuple[int, int | None, str | None]:
    """USER's user part -> (uid, gid from passwd or None, name or None)."""
    for entry in _entries(image.read("/etc/passwd")):
        if len(entry) >= 6 and (entry[0] == user or entry[2] == user):
            return int(entry[2]), int(entry[3]), entry[0]
    if user.isdigit():
        return int(user), None, None
    raise ConfigError(f"failed to create containerd container: unable to find user {user}: "
                      "no matching entries in passwd file")


def _lookup_group(image: Image, group: str) -> int:
    if group.isdigit():
        return int(group)
    for entry in _entries(image.read("/etc/group")):
        if entry[0] == group:
            return int(entry[2])
    raise ConfigError(f"failed to create containerd container: unable to find group {group}: "
                      "no matching entries in group file")


def _member_of(image: Image, name: str | None) -> list[int]:
    if not name:
        return []
    return [int(e[2]) for e in _entries(image.read("/etc/group"))
            if len(e) >= 4 and name in e[3].split(",")]


def home(image: Image, uid: int) -> str:
    """The user's home in the image's /etc/passwd, else / (containerd's rule for HOME)."""
    for entry in _entries(image.read("/etc/passwd")):
        if len(entry) >= 6 and entry[2] == str(uid):
            return entry[5] or "/"
    return "/"


def identity(pod: dict, container: dict, image: Image, key: str) -> Identity | None:
    """runAsUser/runAsGroup over the image's USER, the runAsNonRoot check the kubelet makes
    (against the image's USER when no runAsUser is set), plus the user's groups in the image,
    supplementalGroups and fsGroup. None: root with the container's capabilities."""
    psc = pod["spec"].get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    image_user, _, image_group = image.config.user.partition(":")
    who = f'(pod: "{key}", container: {container["name"]})'
    if csc.get("runAsNonRoot", psc.get("runAsNonRoot")):
        if uid == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {who}")
        if uid is None:
            if image_user and not image_user.isdigit():
                raise ConfigError(f"container has runAsNonRoot and image has non-numeric user "
                                  f"({image_user}), cannot verify user is non-root {who}")
            if not image_user or int(image_user) == 0:
                raise ConfigError(f"container has runAsNonRoot and image will run as root {who}")
    name = None
    if uid is None:
        uid, passwd_gid, name = _lookup_user(image, image_user) if image_user else (0, 0, "root")
        if gid is None:
            gid = _lookup_group(image, image_group) if image_group else passwd_gid
    else:
        for entry in _entries(image.read("/etc/passwd")):
            if len(entry) >= 6 and entry[2] == str(uid):
                name = entry[0]
                if gid is None:
                    gid = int(entry[3])
                break
    if not uid:
        return None
    groups = [*_member_of(image, name), *(psc.get("supplementalGroups") or [])]
    if psc.get("fsGroup") is not None:
        groups.append(psc["fsGroup"])
    gid = gid if gid is not None else 0
    return Identity(uid=uid, gid=gid, groups=sorted({gid, *groups}))
