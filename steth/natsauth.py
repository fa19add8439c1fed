"""Who may publish and subscribe to what: the NATS permissions of a controller, of one agent, of an admin.

The broker enforces these (docs/security.md). The agent uses `agent_inbox_prefix` for its own request
inboxes (JetStream acks of its presence writes), so that its identity can be allowed to read those and
nothing else: an agent can never subscribe to the controller's inboxes and read other nodes' replies.
Both the agent and `steth nats-config` import this module, so it imports nothing from either side.
"""

from __future__ import annotations

from steth.schemas import subjects
from steth.schemas.results import RESULTS_STREAM  # the scheduler's results stream (default name)

KV_STREAM = f"KV_{subjects.PRESENCE_BUCKET}"
KV_PREFIX = f"$KV.{subjects.PRESENCE_BUCKET}"
JS_API = "$JS.API"
CONTROLLER_INBOX = "_INBOX"
AGENT_INBOX = "_INBOX_AGENT"


def agent_inbox_prefix(node: str) -> str:
    """The agent's inbox prefix: only this node's identity may subscribe below it."""
    return f"{AGENT_INBOX}.{subjects.token(node)}"


def agent_permissions(node: str, roles: list[str], results_stream: str = RESULTS_STREAM) -> dict:
    """An agent: its own request subjects, replies only to inboxes that asked, its own presence key."""
    tok = subjects.token(node)
    p = subjects.PREFIX
    subscribe = [f"{p}.req.all.*", f"{p}.req.node.{tok}.*"] + [f"{p}.req.role.{r}.*" for r in sorted(set(roles))]
    subscribe.append(f"{agent_inbox_prefix(node)}.>")
    publish = [
        f"{KV_PREFIX}.{node}",  # its presence entry, and only its own (KV keys keep dots: no token escape)
        f"{p}.presence.*.{tok}",  # its up/down announcements
        f"{p}.results.{tok}.>",  # its scheduled results
        # JetStream API: look up the presence bucket and the results stream. Creating or changing them is the
        # admin identity's (`steth setup`): an agent could otherwise re-point the results stream at `_INBOX.>`.
        f"{JS_API}.STREAM.INFO.{KV_STREAM}",
        f"{JS_API}.STREAM.INFO.{results_stream}",
        # Reading presence (the scheduler's mesh watches it; node:NAME targets look peers up).
        f"{JS_API}.CONSUMER.CREATE.{KV_STREAM}",
        f"{JS_API}.CONSUMER.CREATE.{KV_STREAM}.>",
        f"{JS_API}.CONSUMER.DELETE.{KV_STREAM}.>",
        f"{JS_API}.CONSUMER.INFO.{KV_STREAM}.>",
        f"{JS_API}.STREAM.MSG.GET.{KV_STREAM}",
        f"{JS_API}.DIRECT.GET.{KV_STREAM}.>",
        f"$JS.FC.{KV_STREAM}.>",  # flow control answers of the ordered consumer behind a KV watch
    ]
    # allow_responses: one reply to the reply subject of each request it received, for a minute at most.
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": subscribe},
        "allow_responses": {"max": 1, "expires": "1m"},
    }


def controller_permissions(results_stream: str = RESULTS_STREAM) -> dict:
    """A controller: publish requests, read presence (KV watch) and results; no presence writes."""
    p = subjects.PREFIX
    publish = [f"{p}.req.>"]
    for stream in (KV_STREAM, results_stream):
        publish += [
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}",  # an ephemeral consumer: KV watch, results readers
            f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.DELETE.{stream}.>",
            f"{JS_API}.CONSUMER.INFO.{stream}.>",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.>",  # pull consumers
            f"{JS_API}.STREAM.MSG.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}.>",
            f"$JS.FC.{stream}.>",  # flow control answers of ordered consumers (KV watch)
            f"$JS.ACK.{stream}.>",
        ]
    subscribe = [f"{CONTROLLER_INBOX}.>", f"{p}.presence.>", f"{p}.results.>"]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def admin_permissions(results_stream: str = RESULTS_STREAM) -> dict:
    """An administrator (`steth setup`): create, update and look up the presence bucket and the results stream,
    and re-create the presence bucket (its entries are rewritten every heartbeat); nothing else."""
    publish = [f"{JS_API}.STREAM.{op}.{s}" for s in (KV_STREAM, results_stream) for op in ("INFO", "CREATE", "UPDATE")]
    publish.append(f"{JS_API}.STREAM.DELETE.{KV_STREAM}")
    return {"publish": {"allow": publish}, "subscribe": {"allow": [f"{CONTROLLER_INBOX}.>"]}}


def bcrypt_hash(password: str, rounds: int = 11) -> str:
    """A bcrypt hash nats-server accepts in `password:` ($2a$ form), from the maintained `bcrypt` package
    (the controller extra), not the stdlib `crypt` module that Python 3.13 removed."""
    try:
        import bcrypt
    except ImportError:
        raise ValueError("--bcrypt needs the bcrypt package: pip install 'steth[controller]'") from None
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds, prefix=b"2a")).decode()
