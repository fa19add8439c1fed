"""Running external tools safely: argv lists only, a timeout, a process group killed at the deadline."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass

from steth.agent.errors import ToolMissing


@dataclass
class Completed:
    argv: list[str]
    returncode: int | None  # None: killed at the deadline
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


_PR_SET_PDEATHSIG = 1
_libc = None


def die_with_agent(sig: int = signal.SIGKILL):
    """A preexec_fn: the kernel sends `sig` to the tool when the agent dies, even by SIGKILL.

    A SIGKILLed agent cannot kill its children itself; with PR_SET_PDEATHSIG the kernel does it. The
    signal survives nsenter (it execs, it does not fork) and tools with file capabilities run by
    root; a tool that changes its user (tcpdump without `-Z root`) clears it, and it reaches the tool
    only, not processes the tool forked. Jobs wrapped in coreutils `timeout` pass SIGTERM (which
    `timeout` forwards to its child) instead of SIGKILL.
    """
    global _libc
    if _libc is None:  # loaded in the agent, before fork: the child only calls into it
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    libc, agent = _libc, os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != agent:  # the agent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


# Where `ip netns add` (and Neutron's agents, through it) bind named network namespaces.
NETNS_DIR = "/run/netns"


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    """Prefix argv to run inside a named network namespace (names are validated by the schemas).

    nsenter only calls setns(CLONE_NEWNET): unlike `ip netns exec` (and `ip -n`) it unshares no mount
    namespace and remounts no /sys, so the unit needs neither `mnt` in RestrictNamespaces= nor @mount.
    Tools run this way read the network through netlink, ioctls and /proc/self/net, never /sys/class/net.
    """
    return ["nsenter", f"--net={NETNS_DIR}/{netns}", *argv] if netns else argv


async def run(argv: list[str], timeout: float, *, netns: str | None = None) -> Completed:
    """Run argv in its own process group; on timeout or cancellation, kill the whole group."""
    argv = in_netns(netns, argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_agent(),
        )
    except FileNotFoundError:
        raise ToolMissing(f"{argv[0]} is not installed") from None
    except PermissionError:
        raise ToolMissing(f"{argv[0]} cannot be run: permission denied") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=max(0.05, timeout))
        return Completed(argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    except TimeoutError:
        await kill_group(proc)
        return Completed(argv, None, "", f"{argv[0]} killed at the deadline ({timeout:.1f} s)")
    except BaseException:
        await kill_group(proc)
        raise


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        await asyncio.wait_for(proc.wait(), timeout=5)
    except TimeoutError:
        pass
