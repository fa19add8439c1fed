"""Running a site plan: the schedule of steth.controller.validate_requirements against the fleet, into a Report.

    report = await validate(session, plan, "site.yaml", emit=print_progress)

Groups run in order; the requirements of one group run at the same time (asyncio.gather of their requests on
the session's one NATS connection); the steps of a requirement run in order. Each requirement reuses its
recipe's core: `mesh_pairs` (steth mesh), `build_pairs` (steth vlan-check), `measure` (steth bandwidth).

A node of the plan that is not in presence (or whose heartbeat is stale) is not sent anything: presence fails
naming it, and every other requirement it belongs to is incomplete for it (and still checks the others).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from steth.controller.commands.bandwidth import SERVER_MARGIN_S, measure
from steth.controller.commands.mesh import mesh_pairs
from steth.controller.commands.vlan_check import build_pairs, gather_once_more_if_late
from steth.controller.params import wire_args
from steth.controller.validate_report import (
    CellStatus,
    Finding,
    Matrix,
    Progress,
    Report,
    RequirementResult,
    pair_matrix,
    vlan_matrix,
)
from steth.controller.validate_requirements import (
    Requirement,
    Step,
    check_presence,
    counted,
    expected_nodes,
    format_bps,
    requirements,
    schedule,
    step_args,
)
from steth.schemas.envelope import Status
from steth.schemas.probes.vlan_check import VlanCheckParams
from steth.schemas.validate_plan import Plan, format_vlan_ranges

Emit = Callable[[Progress], None]
Cells = dict[tuple[str, str], tuple[str, CellStatus, str]]


@dataclass
class Run:
    """One validation in flight: the session, what presence said, the progress sink, the clock."""

    session: Any  # steth.controller.session.Session (or a stand-in with presence() and run())
    present: dict[str, Any]  # node -> Present (alive ones only)
    stale: dict[str, float]  # node -> heartbeat age, for the ones left out
    emit: Emit
    started: float = field(default_factory=time.monotonic)
    total: int = 0
    index: dict[str, int] = field(default_factory=dict)

    def progress(self, event: str, req: Requirement, **fields: Any) -> None:
        self.emit(
            Progress(
                event=event,
                requirement=req.id,
                index=self.index.get(req.id, 0),
                total=self.total,
                elapsed_s=round(time.monotonic() - self.started, 3),
                **fields,
            )
        )

    def absent(self, nodes: Sequence[str]) -> list[str]:
        return [n for n in nodes if n not in self.present]

    def why_absent(self, node: str) -> str:
        if node in self.stale:
            return f"{node}: stale heartbeat ({self.stale[node]:.0f} s old): not checked"
        return f"{node}: no agent in presence: not checked"

    def addresses(self, req: Requirement) -> tuple[dict[str, str], list[str]]:
        """node -> address on the requirement's plane, for present nodes; and the present nodes without one."""
        found, none = {}, []
        for node in req.nodes:
            if node not in self.present:
                continue
            address = self.present[node].info.address_on(req.plane_by_node.get(node) or None)
            if address:
                found[node] = address
            else:
                none.append(node)
        return found, none


async def validate(
    session: Any,
    plan: Plan,
    plan_path: str,
    emit: Emit | None = None,
    steth_version: str = "",
) -> Report:
    """Run every requirement of the plan; the report (its phases: seconds per group of the schedule)."""
    report = Report(plan=plan_path, site=plan.site, steth_version=steth_version)
    run_started = time.monotonic()
    present_all = await session.presence() or {}
    present = {n: p for n, p in present_all.items() if p.alive}
    stale = {n: p.age_s for n, p in present_all.items() if not p.alive}
    roles = {n: list(p.info.roles) for n, p in present.items()}
    reqs = requirements(plan, expected_nodes(plan, roles))
    run = Run(session, present, stale, emit or (lambda p: None), started=run_started, total=len(reqs))
    run.index = {r.id: i for i, r in enumerate(reqs, start=1)}
    results: dict[str, RequirementResult] = {}
    matrices: dict[str, list[Matrix]] = {}
    for group in schedule(reqs):
        began = time.monotonic()
        done = await asyncio.gather(*(_one(run, plan, roles, req) for req in group))
        for req, (result, found) in zip(group, done):
            results[req.id], matrices[req.id] = result, found
        report.phases["+".join(r.id for r in group)] = round(time.monotonic() - began, 3)
    report.requirements = [results[r.id] for r in reqs]
    # Matrices grouped per plane and per physnet, in plan order.
    report.matrices = [m for r in reqs for m in matrices[r.id]]
    report.matrices.sort(key=lambda m: (not m.section.startswith("plane"), _order(plan, m.section)))
    report.elapsed_s = time.monotonic() - run_started
    return report


def _order(plan: Plan, section: str) -> int:
    names = [f"plane {p.name}" for p in plan.planes] + [f"physnet {p.name}" for p in plan.physnets]
    return names.index(section) if section in names else len(names)


async def _one(run: Run, plan: Plan, roles: dict[str, list[str]], req: Requirement):
    run.progress("start", req, title=req.title)
    began = time.monotonic()
    if req.kind == "presence":
        result, matrices = _presence(run, plan, roles, req), []
    elif req.blocked:
        finding = Finding(requirement=req.id, status="incomplete", message=req.blocked, nodes=list(req.nodes))
        result, matrices = RequirementResult.of(req, "incomplete", measured="not run", findings=[finding]), []
    else:
        try:
            result, matrices = await _RUNNERS[req.kind](run, req)
        except Exception as exc:  # one requirement going wrong must not lose the others' results
            if isinstance(exc, asyncio.CancelledError):
                raise
            message = f"could not run: {exc.__class__.__name__}: {exc}"
            finding = Finding(requirement=req.id, status="incomplete", message=message, nodes=list(req.nodes))
            result, matrices = RequirementResult.of(req, "incomplete", measured="not run", findings=[finding]), []
    result.duration_s = round(time.monotonic() - began, 3)
    run.progress("done", req, status=result.status, measured=result.measured)
    return result, matrices


# --- presence --------------------------------------------------------------------------------------------


def _presence(run: Run, plan: Plan, roles: dict[str, list[str]], req: Requirement) -> RequirementResult:
    check = check_presence(plan, roles)
    findings = []
    for node in check.missing:
        why = f"stale heartbeat ({run.stale[node]:.0f} s old)" if node in run.stale else "no agent in presence"
        findings.append(Finding(requirement=req.id, status="fail", message=f"missing: {node} ({why})", nodes=[node]))
    for node in check.unexpected:
        findings.append(
            Finding(requirement=req.id, status="fail", message=f"unexpected: {node} is not in the plan", nodes=[node])
        )
    for node, r in check.wrong_roles.items():
        message = f"{node}: roles {', '.join(r['present']) or 'none'}, the plan says {', '.join(r['expected'])}"
        findings.append(Finding(requirement=req.id, status="fail", message=message, nodes=[node]))
    for role in check.short_roles + check.extra_roles:
        c = check.counts[role]
        have = sorted(n for n, r in roles.items() if role in r)
        message = f"role {role}: {c['present']} present, {c['expected']} expected"
        findings.append(Finding(requirement=req.id, status="fail", message=message, nodes=have))
    named = [n.name for n in plan.nodes]
    measured = f"{sum(1 for n in named if n in roles)}/{len(named)} named present" if named else ""
    if check.counts:
        counted = ", ".join(f"{c['present']}/{c['expected']} {r}" for r, c in check.counts.items())
        measured = f"{measured}, {counted}" if measured else counted
    nodes = sorted({n for f in findings for n in f.nodes}) or list(req.nodes)
    status = "fail" if findings else "pass"
    return RequirementResult.of(
        req, status, measured=measured, value=float(len(roles)), unit="count", nodes=nodes, findings=findings
    )


# --- shared ----------------------------------------------------------------------------------------------


async def _send(run: Run, probe: str, per_node: dict[str, dict[str, Any]]):
    """One request per node (its own args, validated by the probe's params model); the Gathered replies."""
    from steth.schemas.probes import get

    spec = get(probe)
    params = {n: spec.params.model_validate(a) for n, a in per_node.items()}
    timeout = max(spec.timeout_for(p) for p in params.values())
    return await run.session.run(probe, None, timeout, per_node_args={n: wire_args(p) for n, p in params.items()})


def _skipped(run: Run, req: Requirement, absent: Sequence[str], no_address: Sequence[str] = ()) -> list[Finding]:
    """Incomplete findings for the nodes of a requirement that could not take part."""
    out = [Finding(requirement=req.id, status="incomplete", message=run.why_absent(n), nodes=[n]) for n in absent]
    where = req.plane or req.physnet or ""
    out += [
        Finding(requirement=req.id, status="incomplete", message=f"{n}: no address on plane {where}", nodes=[n])
        for n in no_address
    ]
    return out


def _on_plane(run: Run, req: Requirement) -> tuple[dict[str, str], list[Finding]]:
    """The present nodes' addresses on the requirement's plane; incomplete findings for the others."""
    addresses, no_address = run.addresses(req)
    return addresses, _skipped(run, req, run.absent(req.nodes), no_address)


def culprits(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The nodes to name for failing (from, to) pairs: those in every pair (one bad node shows in all of its
    pairs), else every node of them."""
    if not pairs:
        return []
    common = set(pairs[0])
    for pair in pairs[1:]:
        common &= set(pair)
    return sorted(common) if common else sorted({n for p in pairs for n in p})


def _pairs_text(pairs: Sequence[tuple[str, str]], limit: int = 4) -> str:
    shown = ", ".join(f"{a} -> {b}" for a, b in pairs[:limit])
    return shown + (f" and {len(pairs) - limit} more" if len(pairs) > limit else "")


def _status(findings: Sequence[Finding]) -> str:
    statuses = {f.status for f in findings}
    return "fail" if "fail" in statuses else "incomplete" if statuses else "pass"


def _nodes(req: Requirement, findings: Sequence[Finding]) -> list[str]:
    """On failure the nodes of the failures; otherwise every node of the requirement."""
    failing = [f for f in findings if f.status == "fail"] or list(findings)
    return sorted({n for f in failing for n in f.nodes}) or list(req.nodes)


def _step(step: Step, nodes: Sequence[str]) -> Step:
    keep = set(nodes)
    return step.model_copy(
        update={
            "nodes": tuple(n for n in step.nodes if n in keep),
            "pairs": tuple(p for p in step.pairs if set(p) <= keep),
        }
    )


def _pair_findings(
    req: Requirement, failing: list[tuple[str, str]], unknown: list[tuple[str, str]], what: str, details: dict
) -> list[Finding]:
    out = []
    if failing:
        message = f"{what} on {len(failing)} pair{'s' if len(failing) != 1 else ''}: {_pairs_text(failing)}"
        detail = "; ".join(f"{a} -> {b}: {details[(a, b)]}" for a, b in failing if details.get((a, b)))
        out.append(Finding(requirement=req.id, status="fail", message=message, nodes=culprits(failing), detail=detail))
    if unknown:
        message = f"no result for {len(unknown)} pair{'s' if len(unknown) != 1 else ''}: {_pairs_text(unknown)}"
        detail = "; ".join(f"{a} -> {b}: {details[(a, b)]}" for a, b in unknown if details.get((a, b)))
        out.append(
            Finding(requirement=req.id, status="incomplete", message=message, nodes=culprits(unknown), detail=detail)
        )
    return out


# --- mesh ------------------------------------------------------------------------------------------------


async def _mesh(run: Run, req: Requirement) -> tuple[RequirementResult, list[Matrix]]:
    addresses, findings = _on_plane(run, req)
    nodes = sorted(addresses)
    cells: Cells = {}
    worst = None
    if len(nodes) >= 2:
        step = _step(req.steps[0], nodes)
        run.progress("step", req, step=f"{step.label} ({len(nodes)} nodes)")
        gathered = await _send(run, "ping", step_args(req, step, addresses))
        failing, unknown, details = [], [], {}
        for p in mesh_pairs(gathered, addresses):
            pair, loss = (p["from"], p["to"]), p.get("loss")
            if loss is None or p.get("error"):
                details[pair] = p.get("error") or p["status"]
            if loss is None:
                unknown.append(pair)
                cells[pair] = ("?", "incomplete", details[pair])
                continue
            worst = loss if worst is None else max(worst, loss)
            rtt = f" {p['rtt_avg_ms']:.2f} ms" if p.get("rtt_avg_ms") is not None else ""
            bad = loss > req.expect.get("max_loss", 0.0)
            if bad:
                failing.append(pair)
                details.setdefault(pair, f"loss {loss:.0%}")
            cells[pair] = (f"{loss:.0%}{rtt}", "fail" if bad else "pass", details.get(pair, ""))
        findings += _pair_findings(req, failing, unknown, "ping loss", details)
    measured = f"{worst:.0%} loss at worst ({len(cells)} pairs)" if worst is not None else "not measured"
    result = RequirementResult.of(
        req,
        _status(findings),
        measured=measured,
        value=worst,
        unit="ratio",
        nodes=_nodes(req, findings),
        findings=findings,
    )
    matrix = pair_matrix(f"plane {req.plane}", "ping loss and average RTT, from row to column", req.nodes, cells)
    return result, [matrix]


# --- mtu -------------------------------------------------------------------------------------------------


async def _mtu(run: Run, req: Requirement) -> tuple[RequirementResult, list[Matrix]]:
    from steth.schemas.probes.mtu import SPEC as MTU

    addresses, findings = _on_plane(run, req)
    wanted = req.expect["mtu_bytes"]
    cells: Cells = {}
    failing, unknown, details, measured_by_pair = [], [], {}, {}
    for step in req.steps:
        step = _step(step, addresses)
        if not step.pairs:
            continue
        run.progress("step", req, step=f"{step.label}: {len(step.pairs)} pairs")
        gathered = await _send(run, "mtu", step_args(req, step, addresses))
        by_node = gathered.by_node()
        for sender, target in step.pairs:
            node = by_node.get(sender)
            result = node.parsed(MTU) if node else None
            pair = (sender, target)
            if node is None or node.status not in (Status.OK, Status.FAILED) or result is None:
                details[pair] = (node.message or node.status.value) if node else "no reply"
                unknown.append(pair)
                cells[pair] = ("?", "incomplete", details[pair])
                continue
            got = result.path_mtu_bytes
            measured_by_pair[pair] = got or 0
            if got is None or got < wanted:
                failing.append(pair)
                details[pair] = f"{got} bytes" if got else (result.error or node.message or "no don't-fragment reply")
                cells[pair] = (str(got or "none"), "fail", details[pair])
            else:
                cells[pair] = (str(got), "pass", "")
    findings += _pair_findings(req, failing, unknown, f"path MTU below {wanted}", details)
    lowest = min(measured_by_pair.values()) if measured_by_pair else None
    if lowest is None:
        measured = "not measured"
    elif failing:
        measured = f"{lowest} bytes at lowest ({len(failing)}/{len(measured_by_pair)} pairs below {wanted})"
    else:
        measured = f">= {wanted} bytes on {len(measured_by_pair)} pairs"
    result = RequirementResult.of(
        req,
        _status(findings),
        measured=measured,
        value=None if lowest is None else float(lowest),
        unit="bytes",
        nodes=_nodes(req, findings),
        findings=findings,
    )
    title = f"path MTU (bytes) with don't-fragment, tried up to {wanted}, from row to column"
    return result, [pair_matrix(f"plane {req.plane}", title, req.nodes, cells)]


# --- endpoints -------------------------------------------------------------------------------------------


async def _endpoint(run: Run, req: Requirement) -> tuple[RequirementResult, list[Matrix]]:
    from steth.schemas.probes.tcp_check import SPEC as TCP_CHECK

    findings = _skipped(run, req, run.absent(req.nodes))
    nodes = [n for n in req.nodes if n in run.present]
    connected, slowest = [], None
    if nodes:
        step = _step(req.steps[0], nodes)
        run.progress("step", req, step=f"{step.label} from {counted(len(nodes), 'node')}")
        gathered = await _send(run, "tcp-check", step_args(req, step, {}))
        for node in gathered.nodes:
            result = node.parsed(TCP_CHECK)
            target = result.targets[0] if result and result.targets else None
            if target is not None and target.connected:
                connected.append(node.node)
                if target.connect_ms is not None:
                    slowest = max(slowest or 0.0, target.connect_ms)
            elif target is not None:
                message = f"{node.node}: {req.expect['address']}: {target.error or 'not connected'}"
                findings.append(Finding(requirement=req.id, status="fail", message=message, nodes=[node.node]))
            else:
                message = f"{node.node}: {node.status.value}" + (f": {node.message}" if node.message else "")
                findings.append(Finding(requirement=req.id, status="incomplete", message=message, nodes=[node.node]))
    measured = f"{len(connected)}/{len(req.nodes)} connected"
    if slowest is not None:
        measured += f", slowest {slowest:.1f} ms"
    result = RequirementResult.of(
        req,
        _status(findings),
        measured=measured,
        value=float(len(connected)),
        unit="count",
        nodes=_nodes(req, findings),
        findings=findings,
    )
    return result, []


# --- VLANs -----------------------------------------------------------------------------------------------


async def _trunks(run: Run, req: Requirement, nodes: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """node -> its trunk interface: the plan's uplink, or the bridge's uplink found with ovs-uplinks."""
    from steth.schemas.probes.ovs_uplinks import SPEC as OVS_UPLINKS

    found = {n: req.node_args[n]["interface"] for n in nodes if req.node_args.get(n, {}).get("interface")}
    ask = {n: {"bridges": [req.bridge_by_node[n]]} for n in nodes if n not in found and n in req.bridge_by_node}
    why: dict[str, str] = {}
    if ask:
        gathered = await _send(run, "ovs-uplinks", ask)
        for node in gathered.nodes:
            result = node.parsed(OVS_UPLINKS)
            uplinks = [u for u in (result.uplinks if result else []) if not u.not_applicable]  # bond members, no DPDK
            if uplinks:
                found[node.node] = uplinks[0].interface
            else:
                bridge = req.bridge_by_node[node.node]
                why[node.node] = f"{node.node}: no uplink found on bridge {bridge}" + (
                    f" ({node.status.value}: {node.message})" if node.message else ""
                )
    return found, why


async def _vlan(run: Run, req: Requirement) -> tuple[RequirementResult, list[Matrix]]:
    findings = _skipped(run, req, run.absent(req.nodes))
    interfaces, why = await _trunks(run, req, [n for n in req.nodes if n in run.present])
    findings += [Finding(requirement=req.id, status="incomplete", message=m, nodes=[n]) for n, m in why.items()]
    nodes = sorted(interfaces)
    vlans = [v for s in req.steps for v in s.vlans]
    per_pair: dict[tuple[str, str], dict[int, tuple[CellStatus, str]]] = {
        (a, b): {} for a in req.nodes for b in req.nodes if a != b
    }
    lost: dict[int, set[tuple[str, str]]] = {}
    unknown: dict[tuple[str, str], str] = {}
    if len(nodes) >= 2:
        for k, step in enumerate(req.steps, start=1):
            step = _step(step, nodes)
            run.progress("step", req, step=f"batch {k}/{len(req.steps)}: {step.label} on {len(nodes)} nodes")
            args = step_args(req, step, {}, interfaces)
            token = secrets.token_hex(6)
            per_node = {n: VlanCheckParams.model_validate({**a, "token": token}) for n, a in args.items()}
            gathered = await gather_once_more_if_late(
                lambda params: _send(run, "vlan-check", {n: p.model_dump() for n, p in params.items()}), per_node, nodes
            )
            for p in build_pairs(gathered, nodes, list(step.vlans)):
                pair = (p["from"], p["to"])
                if p["result"] == "passed":
                    per_pair[pair][p["vlan"]] = ("pass", f"{p['frames']} frames")
                elif p["result"] == "lost":
                    per_pair[pair][p["vlan"]] = ("fail", p["detail"] or "no frame arrived")
                    lost.setdefault(p["vlan"], set()).add(pair)
                else:
                    per_pair[pair][p["vlan"]] = ("incomplete", p["detail"])
                    unknown.setdefault(pair, p["detail"])
    # One finding per set of VLANs lost on the same pairs: "VLAN 150 lost on 4 pairs ..." names the node.
    by_pairs: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for vlan, pairs in sorted(lost.items()):
        by_pairs.setdefault(tuple(sorted(pairs)), []).append(vlan)
    for pairs, vids in by_pairs.items():
        word = "VLAN" if len(vids) == 1 else "VLANs"
        message = (
            f"{word} {format_vlan_ranges(vids)} lost on {len(pairs)} pair{'s' if len(pairs) != 1 else ''}: "
            f"{_pairs_text(list(pairs))}"
        )
        findings.append(Finding(requirement=req.id, status="fail", message=message, nodes=culprits(list(pairs))))
    if unknown:
        pairs = sorted(unknown)
        findings.append(
            Finding(
                requirement=req.id,
                status="incomplete",
                message=f"no result for {len(pairs)} pairs: {_pairs_text(pairs)}",
                nodes=culprits(pairs),
                detail="; ".join(f"{a} -> {b}: {d}" for (a, b), d in unknown.items() if d),
            )
        )
    passing = [v for v in vlans if v not in lost]
    checked = any(per_pair.values())
    measured = f"{len(passing)}/{len(vlans)} VLANs pass between every pair" if checked else "not measured"
    if lost:
        measured += f"; lost: {format_vlan_ranges(sorted(lost))}"
    result = RequirementResult.of(
        req,
        _status(findings),
        measured=measured,
        value=float(len(passing)) if checked else None,
        unit="count",
        nodes=_nodes(req, findings),
        findings=findings,
    )
    return result, [vlan_matrix(req.physnet or "", vlans, {p: v for p, v in per_pair.items() if v})]


# --- bandwidth -------------------------------------------------------------------------------------------


async def _bandwidth(run: Run, req: Requirement) -> tuple[RequirementResult, list[Matrix]]:
    from steth.schemas.probes import get
    from steth.schemas.probes.iperf_client import IperfClientParams

    addresses, findings = _on_plane(run, req)
    wanted = req.expect["min_bps"]
    cells: Cells = {}
    failing, unknown, details, rates = [], [], {}, {}
    for k, step in enumerate(req.steps, start=1):
        (client, server) = step.pairs[0]
        pair = (client, server)
        if client not in addresses or server not in addresses:
            continue  # named above: absent, or no address
        run.progress("step", req, step=f"pair {k}/{len(req.steps)}: {step.label}")
        params = IperfClientParams.model_validate(step_args(req, step, addresses)[client])
        args = wire_args(params)
        args.pop("server", None)
        timeout = get("iperf-client").timeout_for(params)
        lifetime = min(660.0, params.expected_duration_s() + SERVER_MARGIN_S)
        p = await measure(run.session, server, client, addresses, args, lifetime, timeout)
        received = (p["result"] or {}).get("received_bps")
        if received is not None:
            rates[pair] = received
        if p["status"] == Status.OK.value and received is not None:
            cells[pair] = (format_bps(received), "pass", "")
        elif p["status"] == Status.FAILED.value and received is not None:
            failing.append(pair)
            details[pair] = f"{format_bps(received)} < {format_bps(wanted)}"
            cells[pair] = (format_bps(received), "fail", details[pair])
        else:
            unknown.append(pair)
            details[pair] = p["message"] or p["status"]
            cells[pair] = ("?", "incomplete", details[pair])
    findings += _pair_findings(req, failing, unknown, f"below {format_bps(wanted)}", details)
    if failing:
        for f in findings:  # a slow pair names both ends: the sender's egress or the receiver's ingress
            if f.status == "fail":
                f.nodes = sorted({n for p in failing for n in p})
    lowest = min(rates.items(), key=lambda kv: kv[1]) if rates else None
    measured = f"{format_bps(lowest[1])} at lowest ({lowest[0][0]} -> {lowest[0][1]})" if lowest else "not measured"
    result = RequirementResult.of(
        req,
        _status(findings),
        measured=measured,
        value=lowest[1] if lowest else None,
        unit="bps",
        nodes=_nodes(req, findings),
        findings=findings,
    )
    title = "received bits/s, from row (sender) to column"
    return result, [pair_matrix(f"plane {req.plane}", title, req.nodes, cells)]


_RUNNERS = {"mesh": _mesh, "mtu": _mtu, "endpoint": _endpoint, "vlan": _vlan, "bandwidth": _bandwidth}
