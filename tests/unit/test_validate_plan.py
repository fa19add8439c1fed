"""The site plan of `steth validate`: errors that name the YAML line, bounded models, documented keys, and the
requirements a plan implies (counts, VLAN batches, tunnel overhead arithmetic, what runs in parallel)."""

from __future__ import annotations

import re
import textwrap
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from steth.controller.validate_plan import PlanError, load_plan, parse_plan
from steth.controller.validate_requirements import (
    STAGE_BANDWIDTH,
    STAGE_LIGHT,
    STAGE_PRESENCE,
    STAGE_VLAN,
    check_presence,
    expected_nodes,
    format_bps,
    pair_rounds,
    requirements,
    schedule,
    step_args,
)
from steth.schemas.probes.iperf_client import IperfClientParams
from steth.schemas.probes.mtu import MtuParams
from steth.schemas.probes.ping import PingParams
from steth.schemas.probes.tcp_check import TcpCheckParams
from steth.schemas.probes.vlan_check import MAX_VLANS, VlanCheckParams
from steth.schemas.validate_plan import (
    Plan,
    Tunnel,
    format_vlan_ranges,
    parse_rate,
    parse_vlan_ranges,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "site.yaml"
DOC = ROOT / "docs" / "validate.md"

GOOD = """\
nodes:
  - name: compute-1
    roles: [compute]
  - name: network-1
    roles: [network]
planes:
  - name: data
    cidr: 10.98.0.0/24
    mtu: 1500
physnets:
  - name: physnet1
    uplink: trunk0
    vlans: 100-199,300
endpoints:
  - name: keystone
    address: 10.99.0.1:5000
    from: [compute]
"""


def errors_of(text: str, name: str = "site.yaml") -> list[str]:
    with pytest.raises(PlanError) as exc:
        parse_plan(textwrap.dedent(text), name)
    return str(exc.value).splitlines()


def replace(line: str, new: str) -> str:
    assert line in GOOD
    return GOOD.replace(line, new)


# --- errors name the line ------------------------------------------------------------------------------


def test_the_good_plan_loads():
    plan = parse_plan(GOOD)
    assert plan.roles() == ["compute", "network"]
    assert plan.physnets[0].vlans == "100-199,300"


def test_unknown_key_names_its_line_and_suggests():
    text = replace("    mtu: 1500\n", "    mtu: 1500\n    mut: 1400\n")
    assert errors_of(text) == [
        "site.yaml:10: planes[0].mut: unknown key (did you mean mtu?); known: bandwidth, cidr, interface, mesh, "
        "mtu, mtu_pairs, name, roles"
    ]


def test_unknown_top_level_key():
    assert errors_of(GOOD + "colour: blue\n") == [
        "site.yaml:18: colour: unknown key; known: endpoints, hosts, nodes, physnets, planes, role_counts, site, "
        "tunnel, version"
    ]


def test_impossible_mtu_names_line_and_bound():
    assert errors_of(replace("    mtu: 1500\n", "    mtu: 99999\n")) == [
        "site.yaml:9: planes[0].mtu: 99999 is above 9216"
    ]
    assert errors_of(replace("    mtu: 1500\n", "    mtu: 100\n")) == ["site.yaml:9: planes[0].mtu: 100 is below 576"]


@pytest.mark.parametrize(
    "vlans, problem",
    [
        ("100-5000", "VLAN 5000 is outside 1..4094"),
        ("0-10", "VLAN 0 is outside 1..4094"),
        ("199-100", "'199-100': the range is reversed"),
        ("100-x", "'100-x' is not a VLAN id or a range like 100-199"),
        ('""', "no VLAN given"),
    ],
)
def test_bad_vlan_range(vlans, problem):
    text = replace("    vlans: 100-199,300\n", f"    vlans: {vlans}\n")
    assert errors_of(text) == [f"site.yaml:13: physnets[0].vlans: {problem}"]


def test_endpoint_without_port():
    text = replace("    address: 10.99.0.1:5000\n", "    address: 10.99.0.1\n")
    assert errors_of(text) == ["site.yaml:16: endpoints[0].address: expected HOST:PORT"]
    text = replace("    address: 10.99.0.1:5000\n", "    address: keystone:99999\n")
    assert errors_of(text) == ["site.yaml:16: endpoints[0].address: port must be 1..65535, not '99999'"]


def test_several_errors_come_in_file_order():
    text = replace("    mtu: 1500\n", "    mtu: 99999\n").replace("    uplink: trunk0\n", "    uplink: -x\n")
    lines = errors_of(text)
    assert [line.split(":")[1] for line in lines] == ["9", "12"]
    assert "planes[0].mtu" in lines[0] and "physnets[0].uplink: '-x' is not an interface name" in lines[1]


def test_missing_key_points_at_its_mapping():
    text = replace("  - name: physnet1\n", "  - name: physnet1\n").replace("    vlans: 100-199,300\n", "")
    assert errors_of(text) == ["site.yaml:11: physnets[0]: missing required key 'vlans'"]


def test_duplicate_key_is_an_error_not_last_wins():
    text = replace("    mtu: 1500\n", "    mtu: 1500\n    mtu: 9000\n")
    assert errors_of(text) == ["site.yaml:10: planes[0].mtu: the key is given twice"]


def test_yaml_syntax_error_names_the_line():
    (line,) = errors_of(GOOD + "planes: [\n")
    assert line.startswith("site.yaml:19: YAML:")


def test_cross_checks_name_the_offending_key():
    text = replace("    from: [compute]\n", "    from: [compute, controller]\n")
    assert errors_of(text) == [
        "site.yaml:17: endpoints[0].from: role 'controller' is not declared (roles: compute, network)"
    ]
    text = GOOD + "tunnel:\n  plane: data\n  overlay: geneve\n"
    assert errors_of(text) == [
        "site.yaml:9: planes[0].mtu: 1500 is below what the geneve tunnel needs: tenant_mtu 1500 + 58 = 1558"
    ]
    assert errors_of(GOOD + "tunnel: {plane: storage, overlay: vxlan}\n") == [
        "site.yaml:18: tunnel.plane: no plane named 'storage' (planes: data)"
    ]


def test_one_way_to_find_a_plane_and_udp_needs_a_rate():
    text = replace("    cidr: 10.98.0.0/24\n", "    cidr: 10.98.0.0/24\n    interface: data0\n")
    assert errors_of(text) == ["site.yaml:7: planes[0]: give either cidr or interface (not both, not neither)"]
    text = replace("    mtu: 1500\n", "    mtu: 1500\n    bandwidth: {min_bps: 900M, protocol: udp}\n")
    assert errors_of(text) == [
        "site.yaml:10: planes[0].bandwidth: protocol udp needs bitrate_bps (iperf3 sends UDP at 1 Mbit/s by default)"
    ]


def test_not_a_mapping_and_empty_and_unreadable(tmp_path):
    assert errors_of("- a\n- b\n") == ["site.yaml:1: a plan is a YAML mapping (keys like nodes:, planes:)"]
    assert errors_of("") == ["site.yaml: the plan is empty"]
    with pytest.raises(PlanError, match=r"nope.yaml: cannot read the plan: No such file"):
        load_plan(tmp_path / "nope.yaml")
    assert errors_of("planes: []\n") == ["site.yaml:1: the plan expects no node: give nodes, role_counts or both"]


def test_programmatic_plans_get_the_cross_checks_too():
    with pytest.raises(ValueError, match="role 'storage' is not declared"):
        Plan.model_validate(
            {
                "nodes": [{"name": "a", "roles": ["compute"]}],
                "planes": [{"name": "p", "cidr": "10.0.0.0/24", "roles": ["storage"]}],
            }
        )


# --- value parsers -----------------------------------------------------------------------------------


def test_vlan_ranges_parse_merge_and_format():
    assert parse_vlan_ranges("100-102, 101-103,7") == [7, 100, 101, 102, 103]
    assert format_vlan_ranges([7, 100, 101, 102, 103]) == "7,100-103"
    assert len(parse_vlan_ranges("1-4094")) == 4094  # longer than one vlan-check request: batched later


def test_rates():
    assert parse_rate("900M") == 900e6 and parse_rate("2.5G") == 2.5e9 and parse_rate("100k") == 100e3
    assert parse_rate("10Gbit/s") == 10e9 and parse_rate(1000) == 1000
    with pytest.raises(ValueError):
        parse_rate("fast")
    assert format_bps(1e9) == "1 Gbit/s" and format_bps(9.5e8) == "950 Mbit/s"


# --- the models are bounded and documented ---------------------------------------------------------------


def _models(model: type[BaseModel], seen: set | None = None) -> set[type[BaseModel]]:
    seen = seen if seen is not None else set()
    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        for sub in _nested(field.annotation):
            _models(sub, seen)
    return seen


def _nested(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


MODELS = sorted(_models(Plan), key=lambda m: m.__name__)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_models_forbid_unknown_keys_and_describe_every_field(model):
    assert model.model_config.get("extra") == "forbid"
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"


def test_every_number_list_and_mapping_is_bounded():
    schema = Plan.model_json_schema()
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            kind = None if ("enum" in node or "const" in node) else node.get("type")
            if kind in ("integer", "number") and not (
                {"minimum", "exclusiveMinimum"} & set(node) and {"maximum", "exclusiveMaximum"} & set(node)
            ):
                problems.append(f"{where}: unbounded number")
            if kind == "array" and "maxItems" not in node:
                problems.append(f"{where}: unbounded list")
            if kind == "object" and isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
                problems.append(f"{where}: unbounded mapping")
            if kind == "string" and "pattern" not in node and "maxLength" not in node and "enum" not in node:
                problems.append(f"{where}: unbounded string")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "Plan")
    assert not problems, problems


def test_every_plan_key_is_documented():
    doc = DOC.read_text()
    missing = []
    for model in MODELS:
        for name, field in model.model_fields.items():
            key = field.alias or name
            if not re.search(rf"`{re.escape(key)}`", doc):
                missing.append(f"{model.__name__}.{key}")
    assert not missing, f"not in docs/validate.md: {missing}"


def test_the_documented_example_is_the_example_file():
    """docs/validate.md shows docs/examples/site.yaml verbatim, so that the two cannot drift apart."""
    assert EXAMPLE.read_text().strip() in DOC.read_text()


# --- tunnel overheads (Neutron's arithmetic) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overlay, version, header, overhead",
    [
        ("vxlan", 4, None, 50),  # IPv4 20 + VXLAN_ENCAP_OVERHEAD 30
        ("vxlan", 6, None, 70),
        ("geneve", 4, None, 58),  # IPv4 20 + OVN's minimum max_header_size 38
        ("geneve", 4, 30, 50),  # Neutron's default without OVN (GENEVE_ENCAP_MIN_OVERHEAD)
        ("geneve", 6, None, 78),
        ("gre", 4, None, 42),  # IPv4 20 + GRE_ENCAP_OVERHEAD 22
    ],
)
def test_overhead_arithmetic(overlay, version, header, overhead):
    t = Tunnel(
        plane="data", overlay=overlay, overlay_ip_version=version, geneve_max_header_size=header, tenant_mtu=1500
    )
    assert t.overhead_bytes == overhead
    assert t.underlay_mtu == 1500 + overhead


def test_geneve_header_size_only_for_geneve():
    with pytest.raises(ValueError, match="applies to overlay geneve only"):
        Tunnel(plane="data", overlay="vxlan", geneve_max_header_size=38)


# --- requirements from the example plan ----------------------------------------------------------------


@pytest.fixture(scope="module")
def example():
    plan = load_plan(EXAMPLE)
    return plan, requirements(plan)


ADDR = {"compute-1": "10.98.0.11", "compute-2": "10.98.0.12", "network-1": "10.98.0.13"}


def test_example_requirements(example):
    plan, reqs = example
    assert [r.id for r in reqs] == [
        "presence",
        "mesh:mgmt",
        "mesh:data",
        "mtu:data",
        "endpoint:keystone",
        "endpoint:rabbitmq",
        "endpoint:mariadb",
        "endpoint:nats",
        "vlan:physnet1",
        "bandwidth:data",
    ]
    by_id = {r.id: r for r in reqs}
    assert all(r.nodes == ("compute-1", "compute-2", "network-1") for r in reqs if r.id != "endpoint:mariadb")
    assert by_id["endpoint:mariadb"].nodes == ("network-1",)
    assert not any(r.blocked for r in reqs)
    # The tunnel: tenant 1450 + VXLAN 50 = 1500, what the data plane requires too.
    mtu = by_id["mtu:data"]
    assert mtu.expect == {"mtu_bytes": 1500} and mtu.args["expect_bytes"] == 1500 == mtu.args["max_bytes"]
    assert "vxlan: tenant 1450 + 50" in mtu.title
    # mtu_pairs all: 6 ordered pairs in 2 rounds, each node sending once per round.
    assert [len(s.pairs) for s in mtu.steps] == [3, 3]
    assert len({p for s in mtu.steps for p in s.pairs}) == 6
    for s in mtu.steps:
        assert len({a for a, _ in s.pairs}) == 3
    # 200 VLANs fit one batch; the trunk is the uplink.
    vlan = by_id["vlan:physnet1"]
    assert [len(s.vlans) for s in vlan.steps] == [200] and vlan.steps[0].label == "VLANs 100-299"
    assert vlan.node_args == {n: {"interface": "data0"} for n in ADDR}
    # Bandwidth ring: three pairs, one at a time.
    bw = by_id["bandwidth:data"]
    assert [s.pairs[0] for s in bw.steps] == [
        ("compute-1", "compute-2"),
        ("compute-2", "network-1"),
        ("network-1", "compute-1"),
    ]
    assert bw.expect["min_bps"] == 1e9 and "1 Gbit/s" in bw.title
    # Planes by interface per role, or by CIDR: what AgentInfo.address_on takes.
    assert by_id["mesh:mgmt"].plane_by_node == {n: "mgmt0" for n in ADDR}
    assert by_id["mesh:data"].plane_by_node == {n: "data0" for n in ADDR}


def test_example_schedule(example):
    _, reqs = example
    groups = [[r.id for r in g] for g in schedule(reqs)]
    assert groups[0] == ["presence"]
    assert set(groups[1]) == {"mesh:mgmt", "mesh:data", "mtu:data"} | {
        f"endpoint:{n}" for n in ("keystone", "rabbitmq", "mariadb", "nats")
    }
    assert groups[2:] == [["vlan:physnet1"], ["bandwidth:data"]]
    stages = {r.id: (r.stage, r.parallel) for r in reqs}
    assert stages["presence"] == (STAGE_PRESENCE, False)
    assert stages["vlan:physnet1"] == (STAGE_VLAN, False)
    assert stages["bandwidth:data"] == (STAGE_BANDWIDTH, False)
    assert stages["mtu:data"] == (STAGE_LIGHT, True)


def test_step_args_are_valid_probe_args(example):
    """What the planner hands to the orchestration passes the probes' own params models."""
    _, reqs = example
    models = {
        "mesh": PingParams,
        "mtu": MtuParams,
        "vlan": VlanCheckParams,
        "endpoint": TcpCheckParams,
        "bandwidth": IperfClientParams,
    }
    checked = 0
    for req in reqs:
        for step in req.steps:
            for node, args in step_args(req, step, ADDR).items():
                assert node in req.nodes
                models[req.kind].model_validate(args)
                checked += 1
    # mesh x2 planes, mtu 2 rounds, one vlan batch: 3 nodes each; endpoints 3+3+1+3; bandwidth: 3 pairs, 1 client
    assert checked == 3 * 2 + 3 * 2 + 3 + 10 + 3


def test_vlan_batches_stay_under_the_probe_limit():
    plan = parse_plan(replace("    vlans: 100-199,300\n", "    vlans: 1-4094\n"))
    (vlan,) = [r for r in requirements(plan) if r.kind == "vlan"]
    sizes = [len(s.vlans) for s in vlan.steps]
    assert sizes == [MAX_VLANS] * 7 + [4094 - 7 * MAX_VLANS]
    assert [v for s in vlan.steps for v in s.vlans] == list(range(1, 4095))
    assert "(2 nodes, 8 batches)" in vlan.title
    small = [len(s.vlans) for s in next(r for r in requirements(plan, vlan_batch=100) if r.kind == "vlan").steps]
    assert max(small) == 100 and sum(small) == 4094
    with pytest.raises(ValueError):
        requirements(plan, vlan_batch=MAX_VLANS + 1)


def test_a_bridge_only_physnet_asks_for_its_uplink():
    plan = parse_plan(replace("    uplink: trunk0\n", "    bridge: {compute: br-ex, network: br-net}\n"))
    (vlan,) = [r for r in requirements(plan) if r.kind == "vlan"]
    assert vlan.node_args == {} and vlan.bridge_by_node == {"compute-1": "br-ex", "network-1": "br-net"}
    with pytest.raises(KeyError, match="run ovs-uplinks"):
        step_args(vlan, vlan.steps[0], ADDR)
    args = step_args(vlan, vlan.steps[0], ADDR, interfaces={"compute-1": "eth1", "network-1": "eth2"})
    assert args["network-1"]["interface"] == "eth2"


def test_pair_rounds():
    assert pair_rounds(["b", "a"], "ring") == [[("a", "b"), ("b", "a")]]
    assert pair_rounds(["a"], "all") == []
    rounds = pair_rounds(list("abcd"), "all")
    assert len(rounds) == 3 and len({p for r in rounds for p in r}) == 12


# --- presence -----------------------------------------------------------------------------------------


def test_presence_against_named_nodes_and_counts():
    plan = parse_plan(GOOD + "role_counts: {compute: 2}\n")
    present = {"compute-1": ["compute"], "compute-7": ["compute"], "compute-8": ["compute"], "stray": ["storage"]}
    check = check_presence(plan, present)
    assert check.missing == ["network-1"] and check.unexpected == ["stray"]
    assert check.counts == {"compute": {"expected": 2, "present": 3}} and check.extra_roles == ["compute"]
    assert not check.ok
    assert "role compute: 3 present, 2 expected" in check.findings()
    # Counted nodes join the checks; missing named ones stay in (they will show as no reply).
    assert list(expected_nodes(plan, present)) == ["compute-1", "compute-7", "compute-8", "network-1"]
    ok = check_presence(plan, {"compute-1": ["compute"], "compute-2": ["compute"], "network-1": ["network", "dhcp"]})
    assert ok.ok


def test_a_plane_with_one_node_is_blocked_not_failed():
    plan = parse_plan(replace("    mtu: 1500\n", "    mtu: 1500\n    roles: [network]\n"))
    mesh = next(r for r in requirements(plan) if r.id == "mesh:data")
    assert mesh.steps == () and "needs at least two nodes" in mesh.blocked
