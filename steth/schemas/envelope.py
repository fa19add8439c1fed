"""Request and reply envelopes, and the statuses a node can report."""

from __future__ import annotations

import enum
import json
import time
import uuid
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

# The envelope versions this side speaks (`v`): a request in any other is answered `invalid`, naming these.
PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
PROTOCOL_VERSION = PROTOCOL_VERSIONS[-1]  # the version this side sends


def unspoken_version(v: object) -> str:
    """The `invalid` message for a request whose version is not spoken here; it names the ones that are."""
    spoken = ", ".join(str(x) for x in PROTOCOL_VERSIONS)
    return f"protocol version {v!r} is not spoken here: this agent speaks version(s) {spoken}"


class Status(str, enum.Enum):
    OK = "ok"  # ran, all good
    FAILED = "failed"  # ran, found a problem: a finding
    INVALID = "invalid"  # bad args or malformed request
    ABORTED = "aborted"  # could not run: tool, interface or permission missing, or busy
    UNKNOWN_PROBE = "unknown_probe"
    TIMEOUT = "timeout"  # ran past the request's deadline
    ERROR = "error"  # unexpected exception in the agent
    # Added by the controller, never sent by an agent:
    NO_REPLY = "no_reply"  # expected (present, or named), silent by the deadline
    # A node that answers without being expected (no presence entry) keeps its own status: the controller
    # notes it (summary "answered_without_presence", the footer) instead of a status of its own.


# Statuses that mean "we do not know the whole answer": exit code 3.
INCOMPLETE = frozenset(
    {Status.INVALID, Status.ABORTED, Status.UNKNOWN_PROBE, Status.TIMEOUT, Status.ERROR, Status.NO_REPLY}
)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


EPOCH_BOUND_S = 1e11  # the year 5138: any time beyond is a mistake or an attack


class Request(BaseModel):
    v: int = PROTOCOL_VERSION
    id: str = Field(default_factory=new_request_id, max_length=64)
    probe: str = Field(max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)
    # Absolute, seconds since the epoch; bounded so that no arithmetic on them can overflow (1e306 did).
    deadline: float = Field(gt=0, lt=EPOCH_BOUND_S, allow_inf_nan=False)
    sender: str = Field(default="", max_length=128)
    sent: float = Field(default_factory=time.time, gt=0, lt=EPOCH_BOUND_S, allow_inf_nan=False)
    # ed25519 signature of signing_payload() (base64) and the signing key's id: see docs/security.md.
    sig: str = Field(default="", max_length=128)
    kid: str = Field(default="", max_length=64)


SIGNING_DOMAIN = b"steth-request-v2\n"  # v2: the send time is signed


def signing_payload(request: Request, subject: str) -> bytes:
    """The exact bytes a request signature covers (docs/security.md, "Signed requests").

    The subject is included so that a request signed for one node cannot be re-published to every node, the
    send time so that an agent can refuse what was sent before it started (no replay across a restart).
    JSON with sorted keys and no spaces; the times as integer milliseconds so that no float formatting
    is involved; args as they travel (plain JSON types after model_dump(mode="json")).
    """
    body = {
        "v": request.v,
        "id": request.id,
        "probe": request.probe,
        "args": to_jsonable_python(request.args),
        "deadline_ms": int(round(request.deadline * 1000)),
        "sent_ms": int(round(request.sent * 1000)),
        "sender": request.sender,
        "kid": request.kid,
        "subject": subject,
    }
    return (
        SIGNING_DOMAIN
        + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    )


# Signed replies (docs/security.md, "Signed replies"): the agent's signature travels in NATS headers, over the
# reply's bytes exactly as sent, so that nothing needs re-encoding to verify it.
REPLY_SIGNING_DOMAIN = b"steth-reply-v1\n"
REPLY_KID_HEADER = "Steth-Kid"
REPLY_SIG_HEADER = "Steth-Sig"
REPLY_SUBJECT_HEADER = "Steth-Subject"  # the request subject the reply answers


def reply_signing_payload(request_id: str, subject: str, data: bytes) -> bytes:
    """The bytes a reply signature covers: the request id and the subject it was received on (so a recorded
    reply cannot stand for another request or another node's subject), then the reply's payload as sent."""
    head = json.dumps({"id": request_id, "subject": subject}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return REPLY_SIGNING_DOMAIN + head.encode() + b"\n" + data


class Reply(BaseModel):
    v: int = PROTOCOL_VERSION
    id: str = ""
    node: str
    probe: str = ""
    status: Status
    message: str = ""
    result: dict[str, Any] | None = None
    started: float = 0.0
    finished: float = 0.0
    agent_version: str = ""

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished - self.started)
