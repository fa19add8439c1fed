from __future__ import annotations

import secrets

import click

from steth.controller.errors import UsageError
from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import View, document, emit, footer, table
from steth.controller.params import collect, params_options, wire_args
from steth.schemas.envelope import INCOMPLETE, Status
from steth.schemas.probes.vlan_check import SPEC as VLAN_CHECK
from steth.schemas.probes.vlan_check import VlanCheckParams, VlanCheckResult, parse_vlans

RAN = (Status.OK, Status.FAILED)
MATRIX_MAX_PAIRS = 12  # wider than this, the table lists the failing pairs instead of one column per pair


def build_pairs(gathered, nodes: list[str], vlans: list[int]) -> list[dict]:
    """One entry per (VLAN, from, to): passed, lost, or unknown when either end did not run."""
    by_node = gathered.by_node()
    results = {n.node: n.parsed(VLAN_CHECK) for n in gathered.nodes}
    pairs = []
    for vlan in vlans:
        for receiver in nodes:
            rows = {(r.vlan, r.peer): r for r in results[receiver].rows} if results.get(receiver) else {}
            for sender in nodes:
                if sender == receiver:
                    continue
                pair = {"vlan": vlan, "from": sender, "to": receiver, "result": "unknown", "frames": None, "detail": ""}
                ends = [by_node.get(sender), by_node.get(receiver)]
                if any(e is None or e.status not in RAN for e in ends):
                    pair["detail"] = "; ".join(
                        f"{e.node} {e.status.value}" for e in ends if e is not None and e.status not in RAN
                    )
                else:
                    row = rows.get((vlan, sender))
                    late = _late(results[receiver], results[sender])
                    if row is not None and not (late and not row.passed):
                        pair.update(result="passed" if row.passed else "lost", frames=row.frames, detail=row.detail)
                    elif late:  # no frame, but the receiver was not listening yet when they were sent
                        pair.update(late=late, detail=f"{receiver} listened {late:.2f} s too late: raise --send-delay")
                pairs.append(pair)
    return pairs


def _late(receiver: VlanCheckResult | None, sender: VlanCheckResult | None) -> float:
    """Seconds by which the receiver's listener came up after the sender sent (0: in time)."""
    listening, sent = receiver and receiver.listening_since, sender and sender.sent_at
    return max(0.0, listening - sent) if listening and sent else 0.0


RETRY_DELAY_MAX_S = 10.0  # VlanCheckParams.send_delay_s's bound


def retry_send_delay(pairs: list[dict], send_delay_s: float) -> float | None:
    """The send delay for one more round when a listener came up after its peers sent (a loaded host starts
    its capture late), or None when no pair is left unknown for that reason or the delay cannot grow."""
    late = max((p.get("late", 0.0) for p in pairs if p["result"] == "unknown"), default=0.0)
    if late <= 0 or send_delay_s >= RETRY_DELAY_MAX_S:
        return None
    return round(min(RETRY_DELAY_MAX_S, max(2 * send_delay_s, send_delay_s + 2 * late + 1.0)), 1)


async def gather_once_more_if_late(send_round, per_node: dict[str, VlanCheckParams], nodes: list[str], note=None):
    """send_round(per_node) -> Gathered; when a listener came up late, one more round with a longer send delay
    and a fresh token (vlan-check, network-check and validate all go through here)."""
    gathered = await send_round(per_node)
    first = next(iter(per_node.values()))
    delay = retry_send_delay(build_pairs(gathered, nodes, first.vlans), first.send_delay_s)
    if delay is None:
        return gathered
    if note is not None:
        note(f"a listener came up late; once more with --send-delay {delay:g}")
    token = secrets.token_hex(6)
    return await send_round(
        {n: p.model_copy(update={"send_delay_s": delay, "token": token}) for n, p in per_node.items()}
    )


def failing_vlans(pairs: list[dict]) -> list[int]:
    return sorted({p["vlan"] for p in pairs if p["result"] == "lost"})


def as_ranges(vlans: list[int]) -> str:
    """[90, 91, 92, 95] -> '90-92,95'."""
    parts: list[str] = []
    for v in sorted(vlans):
        if parts and int(parts[-1].rsplit("-", 1)[-1]) == v - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{v}"
        else:
            parts.append(str(v))
    return ",".join(parts)


def exit_code(gathered, pairs: list[dict]) -> int:
    if failing_vlans(pairs):
        return 1
    if any(n.status in INCOMPLETE for n in gathered.nodes) or any(p["result"] == "unknown" for p in pairs):
        return 3
    return 0


def _cell(p: dict | None) -> str:
    if p is None or p["result"] == "unknown":
        return "?"
    if p["result"] == "passed":
        return "ok"
    return "LOST" + (f" ({p['detail']})" if p["detail"] else "")


MATRIX_MAX_VLANS = 32  # more VLANs than this: the table shows only those not passing everywhere


def render(pairs: list[dict], nodes: list[str], vlans: list[int]) -> str:
    ordered = [(s, r) for s in nodes for r in nodes if s != r]
    cell = {(p["vlan"], p["from"], p["to"]): p for p in pairs}
    head = ""
    if len(vlans) > MATRIX_MAX_VLANS:
        clean = {p["vlan"] for p in pairs} - {p["vlan"] for p in pairs if p["result"] != "passed"}
        head = f"{len(clean)} of {len(vlans)} VLANs pass between every pair" + (
            "; the others:\n" if len(clean) < len(vlans) else ""
        )
        vlans = [v for v in vlans if v not in clean]
        if not vlans:
            return head
    if len(ordered) <= MATRIX_MAX_PAIRS:
        headers = ["VLAN", *(f"{s}>{r}" for s, r in ordered)]
        rows = [[str(v), *(_cell(cell.get((v, s, r))) for s, r in ordered)] for v in vlans]
        return head + table(headers, rows)
    rows = []
    for v in vlans:
        mine = [cell[(v, s, r)] for s, r in ordered]
        passed = sum(p["result"] == "passed" for p in mine)
        lost = [f"{p['from']}>{p['to']}" for p in mine if p["result"] == "lost"]
        rows.append(
            [
                str(v),
                f"{passed}/{len(mine)}",
                ", ".join(lost[:6]) + (f" (+{len(lost) - 6})" if len(lost) > 6 else "") or "-",
            ]
        )
    return head + table(["VLAN", "PASSED", "LOST (FROM>TO)"], rows)


@click.command("vlan-check")
@click.option("--vlan", "vlan_text", required=True, metavar="LIST", help="VLANs to check: 100,200-210 (1..4094).")
@params_options(VlanCheckParams, exclude=("vlans", "nodes", "token"))
@gathering_command
def command(inv: Invocation, vlan_text: str, **options) -> None:
    """Does each VLAN pass between every pair of the selected nodes, over INTERFACE?

    Every selected node listens on --interface and, after --send-delay, sends --frames 802.1Q-tagged
    frames per VLAN carrying a token of this request; the others report what arrived. Rows are VLANs,
    columns FROM>TO pairs: "ok", "LOST", or "?" when an end did not run. The default mode changes nothing
    on the hosts. --mode subinterface creates VLAN interfaces with addresses from --cidr and pings across
    them (mutating; needs 802.1Q in the kernel). A VLAN lost between any pair is a finding (exit 1).

    \b
    Examples:
      steth vlan-check --interface eth1 --vlan 100,200-210 --role compute
      steth vlan-check --interface trunk0 --vlan 100 --node compute-1 --node network-1 -o json
    """
    from steth.schemas.probes import get

    spec = get("vlan-check")
    try:
        vlans = parse_vlans(vlan_text)
    except ValueError as exc:
        raise UsageError(f"--vlan: {exc}") from None
    collect(
        VlanCheckParams, options, {"vlans": "--vlan"}, vlans=vlans, nodes=["a", "b"]
    )  # bad options: exit 2 before any network

    async def go():
        async with inv.session() as s:
            present = await s.presence() or {}
            missing = [n for n in inv.selection.nodes if n not in present]
            if missing:
                raise UsageError(f"not in presence: {', '.join(missing)}")
            chosen = sorted(
                n for n, p in present.items() if inv.selection.matches(p.info) and (n in inv.selection.nodes or p.alive)
            )
            if len(chosen) < 2:
                raise UsageError(
                    f"a VLAN check needs at least two present nodes; selected: {', '.join(chosen) or 'none'}"
                )
            params = collect(
                VlanCheckParams, options, {"vlans": "--vlan"}, vlans=vlans, nodes=chosen, token=secrets.token_hex(6)
            )

            async def send_round(per_node: dict[str, VlanCheckParams]):
                longest = max(spec.timeout_for(p) for p in per_node.values())
                wire = {n: wire_args(p) for n, p in per_node.items()}
                return await s.run("vlan-check", inv.selection, inv.timeout_or(longest), per_node_args=wire)

            note = lambda text: click.echo(f"vlan-check: {text}", err=True)  # noqa: E731
            return await gather_once_more_if_late(send_round, {n: params for n in chosen}, chosen, note), chosen

    gathered, chosen = run_async(go())
    pairs = build_pairs(gathered, chosen, vlans)
    failing = failing_vlans(pairs)
    lines = ["VLANs that do not pass: " + (as_ranges(failing) if failing else "none")]
    lines += [
        f"{n.node}: {n.status.value}: {n.message}" for n in gathered.nodes if n.status is not Status.OK and n.message
    ]
    columns = ["VLAN", "FROM", "TO", "RESULT", "FRAMES", "DETAIL"]
    emit(
        View(
            columns,
            [[p[c.lower()] for c in columns] for p in pairs],
            doc=document(gathered, vlans=vlans, failing_vlans=failing, pairs=pairs),
            text=render(pairs, chosen, vlans),
            after=[*(lines if inv.fmt.is_table else []), footer(gathered)],
        )
    )
    click.get_current_context().exit(exit_code(gathered, pairs))
