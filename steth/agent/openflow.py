"""`ovs-ofctl dump-flows` text into flows: the table, the match fields and the actions, nothing interpreted.

One line a flow: `cookie=0x.., table=22, priority=1,dl_vlan=1 actions=pop_vlan,set_field:0x31f->tun_id,output:2`
(with --no-stats there are no duration or counters). Actions may nest commas in parentheses (learn(...)).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Flow:
    table: int
    priority: int
    match: dict[str, str] = field(default_factory=dict)  # a bare field (`arp`, `ip`) maps to ""
    actions: list[str] = field(default_factory=list)
    cookie: str = ""

    def outputs(self) -> list[str]:
        """The ports of the flow's output actions (`output:2`, `output:"vxlan-0a2c000d"`), as written."""
        return [a.split(":", 1)[1].strip('"') for a in self.actions if a.startswith("output:")]

    def set_field(self, name: str) -> str | None:
        """The value a `set_field:VALUE->NAME` action loads, else None."""
        for a in self.actions:
            if a.startswith("set_field:") and a.endswith(f"->{name}"):
                return a[len("set_field:") : -len(f"->{name}")]
        return None


def split_top(text: str) -> list[str]:
    """Comma-separated items, keeping commas inside parentheses or quotes."""
    items, depth, quoted, current = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        items.append("".join(current).strip())
    return [i for i in items if i]


def parse_flow(line: str) -> Flow | None:
    head, sep, actions = line.strip().partition(" actions=")
    if not sep:
        return None  # the reply header (`OFPST_FLOW reply (OF1.3)`) or a blank line
    match: dict[str, str] = {}
    for item in split_top(head.replace(", ", ",")):
        key, _, value = item.partition("=")
        match[key.strip()] = value.strip()
    table = int(match.pop("table", "0"))
    priority = int(match.pop("priority", "32768"))  # OpenFlow's default priority is not printed
    cookie = match.pop("cookie", "")
    for meta in ("duration", "n_packets", "n_bytes", "idle_age", "hard_age", "idle_timeout", "hard_timeout"):
        match.pop(meta, None)  # counters and timeouts: printed among the match fields, but none of them
    return Flow(table=table, priority=priority, match=match, actions=split_top(actions), cookie=cookie)


def parse_flows(text: str) -> list[Flow]:
    return [f for f in (parse_flow(line) for line in text.splitlines()) if f is not None]
