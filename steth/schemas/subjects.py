"""NATS subject names: the one place that spells them."""

from __future__ import annotations

import re

PREFIX = "steth.v1"
PRESENCE_BUCKET = "steth_presence"
PRESENCE_EVENTS = f"{PREFIX}.presence"  # .up.<node> / .down.<node>
RESULTS = f"{PREFIX}.results"

# Node names are Nova/Neutron host strings: host names, possibly fully qualified.
NODE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
ROLE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROBE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def token(name: str) -> str:
    """A node name as one subject token: dots would split it, so they are escaped (reversibly)."""
    return name.replace("%", "%25").replace(".", "%2E")


def untoken(tok: str) -> str:
    """The node name a subject token spells (the inverse of token)."""
    return tok.replace("%2E", ".").replace("%25", "%")


def results_node(subject: str) -> str | None:
    """The node a results subject (`steth.v1.results.<node token>.<probe>`) belongs to; None if it is not one."""
    prefix = f"{RESULTS}."
    if not subject.startswith(prefix):
        return None
    parts = subject[len(prefix) :].split(".")
    return untoken(parts[0]) if len(parts) == 2 and parts[0] else None


def req_all(probe: str) -> str:
    return f"{PREFIX}.req.all.{probe}"


def req_role(role: str, probe: str) -> str:
    return f"{PREFIX}.req.role.{role}.{probe}"


def req_node(node: str, probe: str) -> str:
    return f"{PREFIX}.req.node.{token(node)}.{probe}"


def presence_event(kind: str, node: str) -> str:
    return f"{PRESENCE_EVENTS}.{kind}.{token(node)}"


def results(node: str, probe: str) -> str:
    return f"{RESULTS}.{token(node)}.{probe}"
