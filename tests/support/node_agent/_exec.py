"""The container's shim and init: sets up what runc would, then execs the container command.

Run by the agent as `python -I -S _exec.py SPEC.json` (stdlib only, no imports from the
package: it runs before anything of the pod exists). Doing this in a separate program instead
of a preexec_fn keeps fork() in the multi-threaded agent free of Python code.

With isolation (spec has "rootfs"): in new mount, UTS, IPC and PID namespaces, build a rootfs
(an overlay whose lower layers are the image's layer snapshots, top first, or this machine's
`/` in host mode), give it a read-only /sys, a small /dev (device nodes, /dev/shm, the
termination-message file), the pod's volumes at their mountPaths, /etc/hosts and
/etc/hostname; then fork. The child is PID 1 of the container: it
joins the memory cgroup, mounts its own /proc, makes the root read-only if
readOnlyRootFilesystem, chroots, switches user, drops capabilities, sets no_new_privs and
execs. The parent stays outside the cgroup as the container's shim (containerd-shim's role):
it forwards signals to PID 1 and exits as PID 1 does. Being PID 1 gives the container the
kernel's init semantics, as in a real container: a SIGTERM without a handler is ignored (the
kubelet's SIGKILL after the grace period ends it), and when PID 1 exits every other process
of the container is killed.

Without isolation the same process joins the cgroup, switches user and execs (no shim).
Any failure is written to the inherited `error_fd` pipe (close-on-exec: a successful exec
closes it with nothing written, exactly how runc tells its parent) and the process exits
128; the agent reports it as the CRI's StartError, like a runc create failure.
"""

import ctypes
import json
import os
import signal
import sys
import warnings  # noqa: F401 - os.execvpe imports it lazily, after chroot it can't be found

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 1, 38, 24
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(os.uname().machine)
CAP_LAST = 40
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    def enc(s):
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source or fstype} on {target}")


def secure_join(root, path):
    """root + path with symlinks resolved inside root (what runc's securejoin does)."""
    parts = [p for p in path.split("/") if p and p != "."]
    current = ""
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.rsplit("/", 1)[0] if "/" in current else ""
            continue
        candidate = f"{current}/{part}"
        full = root + candidate
        if os.path.islink(full):
            hops += 1
            if hops > 40:
                raise SetupError(f"too many symlinks in {path}")
            link = os.readlink(full)
            if link.startswith("/"):
                current = ""
            parts = [p for p in link.split("/") if p and p != "."] + parts
            continue
        current = candidate
    return root + current if current else root


def submounts(top):
    """Mount points at or below `top`, parents first (from /proc/self/mountinfo)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == top or point.startswith(top + "/"):
                found.append(point)
    return sorted(set(found), key=len)


def ensure_target(path, is_file):
    if is_file:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            with open(path, "a"):
                pass
    else:
        os.makedirs(path, exist_ok=True)


def join_cgroups(paths):
    for procs in paths:
        with open(procs, "w") as f:
            f.write("0")  # "0": the writing process (its pid may be 1 in its namespace)


def build_rootfs(spec):
    """Namespaces and the container's file system, minus /proc (PID 1 mounts its own)."""
    root = spec["rootfs"]
    flags = CLONE_NEWNS
    host = spec.get("host_namespaces") or {}  # hostNetwork / hostPID / hostIPC
    flags |= 0 if host.get("uts") else CLONE_NEWUTS
    flags |= 0 if host.get("ipc") else CLONE_NEWIPC
    flags |= 0 if host.get("pid") else CLONE_NEWPID
    _check(_libc.unshare(flags), f"unshare({flags:#x})")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    name = spec.get("hostname", "").encode()
    if name and not host.get("uts"):
        _check(_libc.sethostname(name, len(name)), "sethostname")
    merged = root["merged"]
    lower = root.get("lower") or "/"  # the image's layers, top first; "/" in host mode
    mount("overlay", merged, "overlay", 0,
          f"lowerdir={lower},upperdir={root['upper']},workdir={root['work']}")
    for point in ("proc", "sys", "dev"):  # an image may lack them; they go to the upper dir
        os.makedirs(f"{merged}/{point}", exist_ok=True)
    mount("/sys", merged + "/sys", None, MS_BIND | MS_REC)
    for target in submounts(merged + "/sys"):  # /sys and everything below it (cgroupfs)
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    dev = merged + "/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for node in DEVICES:
        if os.path.exists(f"/dev/{node}"):
            ensure_target(f"{dev}/{node}", True)
            mount(f"/dev/{node}", f"{dev}/{node}", None, MS_BIND)
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("ptmx", "pts/ptmx"), ("core", "/proc/kcore")):
        os.symlink(target, f"{dev}/{link}")
    for sub in ("pts", "shm", "mqueue"):
        os.makedirs(f"{dev}/{sub}", exist_ok=True)
    try:
        mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620")
    except SetupError:
        pass
    mount("shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          f"mode=1777,size={spec.get('shm_size', 67108864)}")
    for m in spec["mounts"]:
        target = secure_join(merged, m["target"])
        ensure_target(target, m.get("file", False))
        if m["type"] == "tmpfs":
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, m.get("options") or None)
        else:
            mount(m["source"], target, None, MS_BIND | MS_REC)
        if m.get("readonly"):
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    cwd = spec.get("cwd") or "/"
    os.makedirs(secure_join(merged, cwd), exist_ok=True)


def enter_rootfs(spec):
    """In PID 1: its own /proc, the read-only root if asked, chroot."""
    merged = spec["rootfs"]["merged"]
    if (spec.get("host_namespaces") or {}).get("pid"):
        mount("/proc", merged + "/proc", None, MS_BIND | MS_REC)
    else:
        mount("proc", merged + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in ("sys", "sysrq-trigger", "irq", "bus"):  # runc's read-only /proc paths
        target = f"{merged}/proc/{path}"
        if os.path.exists(target):
            mount(target, target, None, MS_BIND | MS_REC)
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    if spec.get("readonly_root"):
        mount(None, merged, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    os.chroot(merged)
    os.chdir("/")


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def set_capabilities(keep):
    """Bounding set and effective/permitted/inheritable = `keep` (a root process only)."""
    for cap in range(CAP_LAST + 1):
        if cap not in keep:
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL for caps this kernel lacks
    if SYS_CAPSET is None:
        return
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    header = CapHeader(0x20080522, 0)
    data = (CapData * 2)()
    for i in range(2):
        part = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = part
    _check(_libc.syscall(SYS_CAPSET, ctypes.byref(header), data), "capset")


def set_parent_death_signal(parent_pid):
    """The shim dies with the agent (and PID 1 with the shim): no orphaned containers."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if parent_pid and os.getppid() != parent_pid:  # the parent is already gone
        os._exit(137)


def become_process(spec):
    """cwd, identity, capabilities, no_new_privs, then exec: the last steps of runc init."""
    cwd = spec.get("cwd") or "/"
    if not spec.get("rootfs"):
        os.makedirs(cwd, exist_ok=True)
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise SetupError(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                         f"{(exc.strerror or str(exc)).lower()}")
    user = spec.get("user")
    if user:
        os.setgroups(user.get("groups") or [])
        os.setgid(user["gid"])
        os.setuid(user["uid"])
    elif spec.get("capabilities") is not None:
        set_capabilities(set(spec["capabilities"]))
    if spec.get("no_new_privs"):
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    # credential changes clear the parent-death signal: set it last
    set_parent_death_signal(spec.get("parent_pid") if not spec.get("rootfs") else 0)
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        if "/" in argv[0]:
            fail(f'exec: "{argv[0]}": stat {argv[0]}: no such file or directory')
        fail(f'exec: "{argv[0]}": executable file not found in $PATH')
    except OSError as exc:
        fail(f'exec: "{argv[0]}": {(exc.strerror or str(exc)).lower()}')


FORWARDED = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT]


def shim(child):
    """Outside the container: forward signals to PID 1, then exit the way it did."""
    os.close(_error_fd)  # only PID 1 reports; its exec closes the last writer
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the log pipes belong to the container
        os.dup2(devnull, fd)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))


def main():
    global _error_fd
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    _error_fd = int(spec.get("error_fd", -1))
    if _error_fd >= 0:
        os.set_inheritable(_error_fd, False)  # closed by a successful exec
    try:
        if not spec.get("rootfs"):
            join_cgroups(spec.get("cgroup_procs") or [])
            become_process(spec)
        if spec.get("parent_pid"):
            set_parent_death_signal(spec["parent_pid"])
        build_rootfs(spec)
        child = os.fork()
        if child:
            shim(child)
        # PID 1 of the container
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
        join_cgroups(spec.get("cgroup_procs") or [])
        enter_rootfs(spec)
        become_process(spec)
    except (OSError, SetupError) as exc:
        fail(f"error during container init: {exc}")


_error_fd = -1


def fail(message):
    text = ("failed to create containerd task: failed to create shim task: OCI runtime create "
            f"failed: runc create failed: unable to start container process: {message}: unknown")
    if _error_fd >= 0:
        os.write(_error_fd, text.encode())
    else:
        sys.stderr.write(text + "\n")
    os._exit(128)


if __name__ == "__main__":
    main()
