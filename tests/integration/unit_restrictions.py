"""Run a command under the restrictions of a systemd unit that can be applied without systemd.

    python unit_restrictions.py UNIT_FILE -- COMMAND [ARGS...]

Run as root, inside a fresh mount and UTS namespace (`unshare --mount --uts --propagation slave`, which is
what PrivateMounts= and ProtectHostname= give a service), this reads UNIT_FILE's [Service] section and, before
exec'ing COMMAND:

- PrivateTmp=yes: empty tmpfs on /tmp and /var/tmp
- ProtectHome=yes: empty, read-only /home, /root and /run/user (the interpreter running the command stays
  reachable if it lives there, as the lab's Python does in /root/.pyenv)
- PrivateDevices=yes: a /dev holding only null, zero, full, random, urandom, tty, pts, shm and the fd links
- ProtectProc=invisible: a /proc of its own mounted with hidepid=invisible
- ProtectKernelTunables=yes: /sys and /proc/sys (and /proc/sysrq-trigger) read-only
- ProtectSystem=strict with ReadWritePaths=: every other mount read-only except the paths named ("-" optional)
- UMask=, Environment= and the environment systemd gives a service (PATH, no inherited variables) plus the
  variables the caller passes with --setenv K=V (NOTIFY_SOCKET, an EnvironmentFile's lines, ...)
- CapabilityBoundingSet=, AmbientCapabilities= and NoNewPrivileges= through `setpriv`

- RestrictNamespaces= and a SystemCallFilter= without @mount: a seccomp filter (x86_64) that answers EPERM
  to unshare()/clone()/setns() with a namespace type the unit does not list and to the @mount system calls,
  as systemd's filter does (clone3() passes: its flags are in memory a filter cannot read)

The rest of what needs systemd itself (SystemCallFilter='s other groups, RestrictAddressFamilies=,
SystemCallArchitectures=, LockPersonality=, MemoryDenyWriteExecute=, RestrictRealtime=, RestrictSUIDSGID=;
the device cgroup; RemoveIPC=) is not applied here: docs/deployment.md says how those are checked.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

# systemd's default PATH for services (systemd 252, as Debian 12 builds it).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def directives(unit: str | Path) -> dict[str, list[str]]:
    """The [Service] section as {key: [value, ...]} in file order (keys may repeat, as SystemCallFilter= does)."""
    out: dict[str, list[str]] = {}
    section = None
    for raw in Path(unit).read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def last(d: dict[str, list[str]], key: str, default: str = "") -> str:
    return d.get(key, [default])[-1]


def yes(d: dict[str, list[str]], key: str) -> bool:
    return last(d, key).lower() in ("yes", "true", "1", "on")


def caps(d: dict[str, list[str]], key: str) -> list[str]:
    """CAP_NET_ADMIN ... as setpriv names (net_admin ...); several lines add up, as systemd does."""
    names: list[str] = []
    for value in d.get(key, []):
        names += [c.lower().removeprefix("cap_") for c in value.split()]
    return names


def setpriv_argv(d: dict[str, list[str]]) -> list[str]:
    bounding = caps(d, "CapabilityBoundingSet")
    ambient = caps(d, "AmbientCapabilities")
    argv = ["setpriv"]
    if yes(d, "NoNewPrivileges"):
        argv.append("--no-new-privs")
    if "CapabilityBoundingSet" in d:
        argv += ["--bounding-set", ",".join(["-all", *(f"+{c}" for c in bounding)])]
    # systemd starts a root service with an empty inheritable set but for the ambient capabilities.
    argv += ["--inh-caps", ",".join(["-all", *(f"+{c}" for c in ambient)])]
    argv += ["--ambient-caps", ",".join(["-all", *(f"+{c}" for c in ambient)])]
    return argv


def environment(d: dict[str, list[str]], extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": SYSTEMD_PATH}
    for value in d.get("Environment", []):
        for item in shlex.split(value):
            key, _, val = item.partition("=")
            env[key] = val
    env.update(extra)
    return env


def rw_paths(d: dict[str, list[str]]) -> list[str]:
    paths = []
    for value in d.get("ReadWritePaths", []):
        for item in value.split():
            optional = item.startswith("-")
            path = item.lstrip("-+")
            if os.path.exists(path):
                paths.append(os.path.realpath(path))
            elif not optional:
                raise SystemExit(f"ReadWritePaths={path} does not exist (systemd would refuse to start)")
    return paths


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def mount_points() -> list[tuple[str, str]]:
    """(mount point, per-mount options) from /proc/self/mountinfo, octal escapes decoded."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        out.append((point, fields[5]))
    return out


def under(path: str, tops: list[str]) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in tops)


def private_tmp() -> None:
    for path in ("/tmp", "/var/tmp"):
        mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", path)


def protect_home(keep: list[str]) -> None:
    for top in ("/home", "/root", "/run/user"):
        if not os.path.isdir(top):
            continue
        kept = [k for k in keep if under(k, [top])]
        staged = []
        for i, path in enumerate(kept):
            stage = f"/tmp/.keep-{i}"
            os.mkdir(stage)
            mount("--bind", path, stage)
            staged.append((stage, path))
        # Search-only (no listing) where something must stay reachable, else nothing at all: this root has no
        # CAP_DAC_OVERRIDE to walk past the mode.
        mount("-t", "tmpfs", "-o", f"mode={'0111' if kept else '0000'},nosuid,nodev", "tmpfs", top)
        for stage, path in staged:
            os.makedirs(path, exist_ok=True)
            mount("--move", stage, path)
            os.rmdir(stage)
        mount("-o", "remount,ro,bind", top)


def private_devices() -> None:
    new = "/tmp/.dev"
    os.mkdir(new)
    mount("-t", "tmpfs", "-o", "mode=0755,nosuid,noexec", "tmpfs", new)
    for name in DEVICES:
        Path(f"{new}/{name}").touch()
        mount("--bind", f"/dev/{name}", f"{new}/{name}")
    for name in ("pts", "shm"):
        os.mkdir(f"{new}/{name}")
    mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620", "devpts", f"{new}/pts")
    os.symlink("pts/ptmx", f"{new}/ptmx")
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", f"{new}/shm")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{new}/{name}")
    os.symlink("/proc/self/fd/1", f"{new}/stdout")
    os.symlink("/proc/self/fd/2", f"{new}/stderr")
    mount("--move", new, "/dev")
    os.rmdir(new)


def protect_kernel_tunables() -> None:
    for path in ("/proc/sys", "/proc/sysrq-trigger"):
        if not os.path.exists(path):  # no sysrq in this kernel
            continue
        mount("--bind", path, path)
        mount("-o", "remount,bind,ro", path)
    mount("-o", "remount,bind,ro", "/sys")


def protect_system_strict(writable: list[str]) -> list[str]:
    """Every mount read-only but the API file systems, the private /tmp, /var/tmp and ReadWritePaths=."""
    for path in writable:
        if not os.path.ismount(path):  # recursive, as systemd binds it: /run/netns/* are nsfs mounts
            mount("--rbind", path, path)
    failed = []
    skip = ["/proc", "/sys", "/dev", "/tmp", "/var/tmp", *writable]
    for point, opts in mount_points():
        if under(point, skip) or "ro" in opts.split(","):
            continue
        done = subprocess.run(["mount", "-o", "remount,bind,ro", point], capture_output=True, text=True)
        if done.returncode != 0:
            failed.append(f"{point}: {done.stderr.strip()}")
    return failed


# --- seccomp: RestrictNamespaces= and @mount (x86_64 numbers, as the kernel's syscall_64.tbl has them) ---

NAMESPACE_FLAGS = {
    "mnt": 0x00020000, "cgroup": 0x02000000, "uts": 0x04000000, "ipc": 0x08000000,
    "user": 0x10000000, "pid": 0x20000000, "net": 0x40000000,
}  # fmt: skip
NR_CLONE, NR_UNSHARE, NR_SETNS = 56, 272, 308
# systemd 252's @mount: chroot mount umount2 pivot_root open_tree move_mount fsopen fsconfig fsmount fspick
# mount_setattr (`systemd-analyze syscall-filter @mount`).
MOUNT_SYSCALLS = (161, 165, 166, 155, 428, 429, 430, 431, 432, 433, 442)
AUDIT_ARCH_X86_64 = 0xC000003E
LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
RET_ALLOW, RET_EPERM = 0x7FFF0000, 0x00050000 | 1


def seccomp_program(denied_ns: int, deny_mount: bool) -> list[tuple[int, int, int, int]]:
    """A classic BPF program over struct seccomp_data (nr at 0, arch at 4, args[i] at 16 + 8 i, low half)."""
    prog: list[tuple[int, int, int, int]] = [
        (LD_W_ABS, 0, 0, 4),
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, RET_ALLOW),
    ]
    prog.append((LD_W_ABS, 0, 0, 0))
    if deny_mount:
        for nr in MOUNT_SYSCALLS:
            prog += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, RET_EPERM)]
    if denied_ns:
        for nr, arg in ((NR_UNSHARE, 0), (NR_CLONE, 0), (NR_SETNS, 1)):
            # nr matches: load the flags argument, EPERM when a denied type is set, else allow.
            prog += [(JEQ_K, 0, 4, nr), (LD_W_ABS, 0, 0, 16 + 8 * arg), (JSET_K, 0, 1, denied_ns)]
            prog += [(RET_K, 0, 0, RET_EPERM), (RET_K, 0, 0, RET_ALLOW)]
    prog.append((RET_K, 0, 0, RET_ALLOW))
    return prog


def install_seccomp(d: dict[str, list[str]]) -> None:
    restrict = last(d, "RestrictNamespaces").lower()
    if restrict.startswith("~"):
        raise SystemExit("unit_restrictions: RestrictNamespaces=~... (a deny list) is not handled")
    denied_ns = 0
    if restrict not in ("", "no", "false"):
        allowed_ns = set() if restrict in ("yes", "true") else set(restrict.split())
        denied_ns = sum(flag for name, flag in NAMESPACE_FLAGS.items() if name not in allowed_ns)
    allow_lists = [v for v in d.get("SystemCallFilter", []) if not v.startswith("~")]
    deny_mount = bool(allow_lists) and not any("@mount" in v.split() for v in allow_lists)
    if not (denied_ns or deny_mount):
        return
    if platform.machine() != "x86_64":
        raise SystemExit("unit_restrictions: the seccomp filter knows x86_64 system call numbers only")
    prog = seccomp_program(denied_ns, deny_mount)
    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise SystemExit(f"unit_restrictions: seccomp: {os.strerror(ctypes.get_errno())}")


def main(argv: list[str]) -> None:
    unit, rest = argv[0], argv[1:]
    extra: dict[str, str] = {}
    while rest and rest[0] == "--setenv":
        key, _, val = rest[1].partition("=")
        extra[key] = val
        rest = rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    d = directives(unit)
    writable = rw_paths(d)
    if yes(d, "PrivateTmp"):
        private_tmp()
    if last(d, "ProtectHome").lower() in ("yes", "true", "read-only", "tmpfs"):
        protect_home([os.path.realpath(sys.base_prefix)])
    if yes(d, "PrivateDevices"):
        private_devices()
    if last(d, "ProtectProc") in ("invisible", "noaccess", "ptraceable"):
        mode = last(d, "ProtectProc")
        mount("-t", "proc", "-o", f"hidepid={mode},nosuid,nodev,noexec", "proc", "/proc")
    if yes(d, "ProtectKernelTunables"):
        protect_kernel_tunables()
    if last(d, "ProtectSystem") == "strict":
        for failure in protect_system_strict(writable):
            print(f"unit_restrictions: cannot make read-only: {failure}", file=sys.stderr)
    if "UMask" in d:
        os.umask(int(last(d, "UMask"), 8))
    install_seccomp(d)  # last: nothing above may mount once it is in place
    os.execvpe("setpriv", [*setpriv_argv(d), "--", *rest], environment(d, extra))


if __name__ == "__main__":
    main(sys.argv[1:])
