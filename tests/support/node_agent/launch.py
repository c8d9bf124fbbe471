"""What a container is started with, computed the way the kubelet builds a CRI container
config: its identity (runAsUser/Group, runAsNonRoot check), environment and command line,
volume mounts, and the wrapper spec (_exec.py) that realizes them on this machine.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import image_config
from .envvars import ConfigError, command_line, container_env, expand, object_lookup
from .image_store import Image
from .sandbox import Identity, MountSpec, PathMap, capability_set, usable_by
from .volumes import Volume

if TYPE_CHECKING:
    from .agent import NodeAgent

SHM_SIZE = 64 * 1024 * 1024  # containerd's default /dev/shm
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pod_key(pod: dict) -> str:
    """format.Pod: name_namespace(uid), as the kubelet writes pods into messages."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta['uid']})"


@dataclass
class ContainerConfig:
    argv: list[str]
    env: dict[str, str]
    identity: Identity | None  # None: run as root
    mounts: list[MountSpec]
    executable: str  # argv[0] resolved on this machine (host mode), else as in the image
    cwd: str = "/"
    image: Image | None = None  # the pulled image whose layers are the root (registry mode)


def identity(agent: NodeAgent, pod: dict, container: dict, exe: str) -> Identity | None:
    """Host mode: runAsUser/runAsGroup/fsGroup/supplementalGroups, verified like the kubelet's
    runAsNonRoot check (the "image" user is root). Returns None (run as root) when that uid
    cannot use the host executable: the image here is this machine, where e.g. a venv under
    /root (mode 700) is out of reach of uid 1000. The pod's status still shows its spec; the
    agent says so once on stderr."""
    psc = pod["spec"].get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    if csc.get("runAsNonRoot", psc.get("runAsNonRoot")):
        if uid is None:
            raise ConfigError(f'container has runAsNonRoot and image will run as root (pod: '
                              f'"{pod_key(pod)}", container: {container["name"]})')
        if uid == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy (pod: "
                              f'"{pod_key(pod)}", container: {container["name"]})')
    if not uid:
        return None
    groups = list(psc.get("supplementalGroups") or [])
    if psc.get("fsGroup") is not None:
        groups.append(psc["fsGroup"])
    ident = Identity(uid=uid, gid=gid if gid is not None else 0, groups=sorted(set(groups)))
    if usable_by(exe, ident):
        return ident
    agent.note_once(f"uid:{uid}:{exe}",
                    f"{exe} is not usable by uid {uid} on this machine: containers asking for "
                    f"runAsUser {uid} run as root (the status still shows the pod's spec)")
    return None


def volume_mounts(container: dict, volumes: dict[str, Volume],
                  env: dict[str, str]) -> list[MountSpec]:
    """volumeMounts -> host sources (subPath / subPathExpr created like the kubelet does),
    parents before children."""
    mounts: list[MountSpec] = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm["name"])
        if vol is None:
            raise ConfigError(f"cannot find volume \"{vm['name']}\" to mount into container "
                              f"\"{container['name']}\"")
        source = vol.path
        sub = vm.get("subPath") or (expand(vm["subPathExpr"], env)
                                    if vm.get("subPathExpr") else "")
        if sub:
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
                os.chmod(source, 0o777)
        mounts.append(MountSpec(target=vm["mountPath"], source=str(source),
                                readonly=bool(vm.get("readOnly")) or vol.read_only,
                                file=source.is_file()))
    mounts.sort(key=lambda m: len([p for p in m.target.split("/") if p]))
    return mounts


TRUSTED_CA_PATH = "/etc/ssl/certs/aksrun-test-ca.pem"


def trust_env(agent: NodeAgent) -> dict[str, str]:
    """Where an image's TLS clients find the node's extra trust (OpenSSL, requests)."""
    if agent.trusted_ca is None:
        return {}
    return {"SSL_CERT_FILE": TRUSTED_CA_PATH, "REQUESTS_CA_BUNDLE": TRUSTED_CA_PATH}


def image_container_config(agent: NodeAgent, pod: dict, container: dict,
                           defined: dict[str, str], image: Image,
                           mounts: list[MountSpec]) -> ContainerConfig:
    """Registry mode: the image's config under the pod's (see image_config)."""
    argv = image_config.command_line(container, defined, image)
    if not argv:
        raise ConfigError(f'failed to generate container "{container["name"]}" spec: no '
                          "command specified")
    hostname = (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]
    env: dict[str, str] = {"HOSTNAME": hostname, **image_config.environment(image)}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update({k: os.environ[k] for k in agent.passthrough_env if k in os.environ})
    env.update(trust_env(agent))
    env.update(defined)
    ident = image_config.identity(pod, container, image, pod_key(pod))
    if "HOME" not in env:
        env["HOME"] = image_config.home(image, ident.uid if ident else 0)
    cwd = container.get("workingDir") or image.config.working_dir or "/"
    return ContainerConfig(argv, env, ident, mounts, argv[0], cwd, image)


def container_config(agent: NodeAgent, pod: dict, container: dict, node: str, pod_ip: str,
                     volumes: dict[str, Volume], image: Image | None = None) -> ContainerConfig:
    """Environment (image PATH, HOSTNAME, passthrough vars, then the spec's), command line
    (`command` + `args`, $(VAR)-expanded; command[0] mapped through `executables`), identity
    and mounts. ConfigError is the kubelet's CreateContainerConfigError."""
    defined = container_env(pod, container, pod_ip=pod_ip, host_ip=agent.host_ip,
                            allocatable=agent.allocatable(node),
                            lookup=object_lookup(agent.get_object))
    if image is not None:
        return image_container_config(agent, pod, container, defined, image,
                                      volume_mounts(container, volumes, defined))
    argv = command_line(container, defined)
    if not argv:
        raise ConfigError(f'no command specified for container "{container["name"]}": this '
                          f'node agent cannot read the entrypoint of image "{container["image"]}"')
    argv[0] = agent.executables.get(argv[0], argv[0])
    resolved = argv[0] if "/" in argv[0] else (
        shutil.which(argv[0], path=agent.image_path) or argv[0])
    hostname = (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]
    env: dict[str, str] = {"PATH": agent.image_path, "HOSTNAME": hostname}
    env.update({k: os.environ[k] for k in agent.passthrough_env if k in os.environ})
    env.update(defined)
    ident = identity(agent, pod, container, resolved)
    if "HOME" not in env:  # the runtime's rule: the user's home in the image, else /
        spec_uid = (container.get("securityContext") or {}).get(
            "runAsUser", (pod["spec"].get("securityContext") or {}).get("runAsUser", 0))
        try:
            env["HOME"] = pwd.getpwuid(spec_uid or 0).pw_dir
        except KeyError:
            env["HOME"] = "/"
    return ContainerConfig(argv, env, ident, volume_mounts(container, volumes, defined),
                           resolved, container.get("workingDir") or "/")


def wrapper_spec(agent: NodeAgent, pod: dict, container: dict, cfg: ContainerConfig,
                 pod_dir: Path, cdir: Path, tmsg: Path) -> dict[str, Any]:
    """The _exec.py spec: namespaces, rootfs, mounts (volumes, the termination-message file,
    the managed /etc/hosts and /etc/hostname, and the interpreter's own directories where a
    volume would hide them), security settings, argv and env."""
    csc = container.get("securityContext") or {}
    spec_ = pod["spec"]
    mounts = list(cfg.mounts)
    tpath = container.get("terminationMessagePath") or "/dev/termination-log"
    mounts.append(MountSpec(target=tpath, source=str(tmsg), file=True))
    mounts.append(MountSpec(target="/etc/hosts", source=str(pod_dir / "etc-hosts"), file=True))
    mounts.append(MountSpec(target="/etc/hostname", source=str(pod_dir / "etc-hostname"),
                            file=True))
    volume_targets = [m.target.rstrip("/") for m in cfg.mounts]
    exposed = [] if cfg.image is not None else agent.sandbox.exposed_paths(cfg.executable)
    for host_path in exposed:  # host mode: the interpreter is the "image" content
        if any(host_path == t or host_path.startswith(t + "/") for t in volume_targets):
            mounts.append(MountSpec(target=host_path, source=host_path, readonly=True))
    for shared in agent.shared_paths:
        mounts.append(MountSpec(target=shared, source=shared))
    if agent.trusted_ca is not None and cfg.image is not None:
        mounts.append(MountSpec(target=TRUSTED_CA_PATH, source=str(agent.trusted_ca),
                                readonly=True, file=True))
    ident = cfg.identity
    spec: dict[str, Any] = {
        "hostname": (spec_.get("hostname") or pod["metadata"]["name"])[:63],
        "readonly_root": bool(csc.get("readOnlyRootFilesystem")),
        "cwd": cfg.cwd,
        "user": None if ident is None else {"uid": ident.uid, "gid": ident.gid,
                                            "groups": ident.groups},
        "capabilities": capability_set(csc),
        "no_new_privs": csc.get("allowPrivilegeEscalation") is False,
        "shm_size": SHM_SIZE,
        "host_namespaces": {"uts": bool(spec_.get("hostNetwork")),
                            "pid": bool(spec_.get("hostPID")),
                            "ipc": bool(spec_.get("hostIPC"))},
        "argv": cfg.argv, "env": cfg.env, "parent_pid": os.getpid(),
    }
    if agent.sandbox.isolate:
        spec["rootfs"] = {"merged": str(cdir / "rootfs"), "upper": str(cdir / "upper"),
                          "work": str(cdir / "work"),
                          "lower": ":".join(str(p) for p in cfg.image.lowers)
                          if cfg.image is not None else "/"}
        spec["mounts"] = [m.__dict__ for m in mounts]
    else:  # no mount namespace: container paths mapped to host paths
        pmap = PathMap(mounts, pod_dir / "rootfs")
        spec["argv"] = [pmap.map(a) for a in cfg.argv]
        spec["env"] = {k: pmap.map(v) for k, v in cfg.env.items()}
        spec["cwd"] = pmap.directory(spec["cwd"])
        spec["mounts"] = []
    return spec
