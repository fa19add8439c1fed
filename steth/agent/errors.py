"""Why a probe gave no findings: one exception family, each class carrying the node status it means.

Probes return an Outcome only for what they found (`ok`, or `failed`: a finding) and raise the rest. The
runtime turns an exception into a status in one place (steth.agent.runtime.settle): a ProbeError by its
class's `status`, its message and its partial result (if any); anything else is `error`.

    ProbeError                    error    the probe ran into something it cannot handle
      CouldNotRun                 aborted  the probe could not run here (the operator can fix it)
        ToolMissing                        a tool is not installed, or not executable
        NoSuchDevice                       an interface or a namespace is not on this node
        NotAllowed                         the agent's policy, or what steth may touch, forbids it
        Unsupported                        this kernel or this tool cannot do it
        Busy                               no free slot before the deadline, a full replay cache
          TooManyJobs                      the job table is full
        OvsdbUnavailable                   OVSDB does not answer
        HelperFailed                       a helper process (scapy child, tcpconnect) failed
        IpError                            `ip` ran and refused
      Invalid                     invalid  the request cannot be run as given (a filter tcpdump refuses)
        RequestRefused                     a signature, an expiry or a replay check refused it
      DeadlineReached             timeout  the probe stopped at the request's deadline
      CleanupFailed               error    what the probe made or was asked to remove could not be removed
"""

from __future__ import annotations

from typing import ClassVar

from steth.schemas.envelope import Status
from steth.schemas.types import Result


class ProbeError(Exception):
    """The root: the runtime answers `status` with str(exc) as the message and `result` (a partial result)."""

    status: ClassVar[Status] = Status.ERROR

    def __init__(self, message: str, result: Result | None = None):
        super().__init__(message)
        self.result = result


class CouldNotRun(ProbeError):
    """The probe could not run here: a tool, an interface, a permission, a free slot is missing."""

    status = Status.ABORTED


class ToolMissing(CouldNotRun):
    """A tool is not installed or cannot be executed."""


class NoSuchDevice(CouldNotRun):
    """An interface or a network namespace the request names is not on this node."""


class NotAllowed(CouldNotRun):
    """Refused by the agent's policy (mutating probes off, allow-lists), or not steth's to change."""


class Unsupported(CouldNotRun):
    """This kernel or this tool cannot do what the probe needs (no 802.1Q, an unknown arping)."""


class Busy(CouldNotRun):
    """No capacity now: no free slot before the deadline, a full replay cache."""


class TooManyJobs(Busy):
    """The agent's job table is full."""


class OvsdbUnavailable(CouldNotRun):
    """OVSDB did not answer, or refused."""


class HelperFailed(CouldNotRun):
    """A helper process steth runs (the scapy child, the tcpconnect helper) failed or printed nothing usable."""


class IpError(CouldNotRun):
    """`ip` ran and refused: no such device, no such namespace, ..."""


class Invalid(ProbeError):
    """The request cannot be run as given: args the schema accepted but the tool refuses (a capture filter)."""

    status = Status.INVALID


class RequestRefused(Invalid):
    """steth.agent.auth refused the request (unsigned, untrusted key, bad signature, expired, replayed)."""

    def __init__(self, reason: str):
        super().__init__(f"refused: {reason}")
        self.reason = reason


class DeadlineReached(ProbeError):
    """The probe stopped at the request's deadline (what it learned so far may travel as the result)."""

    status = Status.TIMEOUT


class CleanupFailed(ProbeError):
    """Something steth made, or was asked to remove, could not be removed: the host needs a look."""
