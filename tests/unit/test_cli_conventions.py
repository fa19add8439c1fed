"""The conventions operators bring from python-openstackclient and the `nats` CLI (issue 13), through Click's
CliRunner and the real entry point: --version, python -m steth, -f/-c/--sort-column, errors naming the option
and the command, the NATS settings' precedence, OpenStack options on either side of the command, completion."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import clirun
import pytest
from click.testing import CliRunner

from steth import __version__
from steth.controller.cli import cli

CLEAN_ENV = {
    "STETH_LAB_NAME": "hcnone",
    "STETH_NATS_URL": None,
    "STETH_CONFIG": None,
    "STETH_DEBUG": None,
    "NATS_URL": None,
    "NATS_CONTEXT": None,
    "NATS_CREDS": None,
    "NATS_NKEY": None,
    "NATS_CERT": None,
    "NATS_KEY": None,
    "NATS_CA": None,
    "OS_CLOUD": None,
}


@pytest.fixture(autouse=True)
def no_running_lab(tmp_path, monkeypatch):
    """The CLI finds a running lab from this process's environment (its NATS URL is the last layer): these
    tests see none, whatever lab the rest of the suite has up beside them."""
    monkeypatch.setenv("STETH_LAB_DIR", str(tmp_path / "no-lab"))
    monkeypatch.delenv("STETH_LAB_NAME", raising=False)


def run_main(args: list[str], env: dict | None = None) -> tuple[int, str, str]:
    """The real entry point in-process with this module's clean environment."""
    return clirun.run_main(args, {**CLEAN_ENV, **(env or {})})[:3]


# --- 1. --version, python -m steth ----------------------------------------------------------------


def test_version_of_steth():
    result = CliRunner().invoke(cli, ["--version"], env=CLEAN_ENV)
    assert result.exit_code == 0 and result.output.strip() == f"steth {__version__}"


def test_version_of_steth_agent():
    from steth.agent.main import main as agent_main

    result = CliRunner().invoke(agent_main, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"steth-agent {__version__}"


def test_python_dash_m_steth():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "steth", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"steth {__version__}", done.stderr
    done = subprocess.run([sys.executable, "-m", "steth", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: steth ")
    assert time.monotonic() - started < 30


# --- 2. -f/--format, -c/--column, --sort-column, --noindent: one renderer for every command --------------


def fake_ping(monkeypatch) -> None:
    """`steth ping` without NATS: Invocation.gather answers two nodes (compute-2 with two targets)."""
    from steth.controller.gather import Gathered, NodeResult
    from steth.controller.options import Invocation
    from steth.schemas.envelope import Status

    def row(target: str, loss: float, avg: float) -> dict:
        return {
            "target": target,
            "sent": 4,
            "received": 4 - int(loss * 4),
            "loss": loss,
            "rtt_min_ms": avg / 2,
            "rtt_avg_ms": avg,
            "rtt_max_ms": avg * 2,
            "rtt_mdev_ms": 0.01,
            "error": None,
        }

    gathered = Gathered(
        "ping",
        "req-1",
        0.25,
        {"compute-1", "compute-2"},
        [
            NodeResult(
                "compute-2",
                Status.FAILED,
                "loss 50% to 10.0.0.9",
                0.2,
                {"targets": [row("10.0.0.1", 0.0, 0.5), row("10.0.0.9", 0.5, 0.2)]},
            ),
            NodeResult("compute-1", Status.OK, "", 0.1, {"targets": [row("10.0.0.1", 0.0, 0.3)]}),
        ],
    )

    class FakeSession:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return None

        async def run(self, *args, **kwargs):
            return gathered

    monkeypatch.setattr(Invocation, "session", lambda self: FakeSession())


PING = ["ping", "10.0.0.1", "10.0.0.9", "--count", "4"]


def test_table_is_the_default_and_shows_a_node_once(monkeypatch):
    fake_ping(monkeypatch)
    code, out, err = run_main(PING)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATUS", "TARGET"]
    assert lines[1].startswith("compute-2") and lines[2].split()[0] == "10.0.0.9"  # continuation row
    assert "2/2 nodes replied" in out


def test_value_with_columns_prints_cells_only(monkeypatch):
    fake_ping(monkeypatch)
    code, out, err = run_main([*PING, "-f", "value", "-c", "node", "-c", "TARGET"])
    assert code == 1
    assert out.splitlines() == ["compute-2 10.0.0.1", "compute-2 10.0.0.9", "compute-1 10.0.0.1"]
    assert "2/2 nodes replied" in err  # the footer is not in the way of a script


def test_format_before_the_command_and_after_it(monkeypatch):
    fake_ping(monkeypatch)
    _, before, _ = run_main(["-f", "value", "-c", "node", *PING])
    _, after, _ = run_main([*PING, "--format", "value", "--column", "node"])
    _, both, _ = run_main(["-f", "json", *PING, "-f", "value", "-c", "node"])  # after the command wins
    assert before == after == both == "compute-2\ncompute-2\ncompute-1\n"


def test_sort_column_numeric_and_descending(monkeypatch):
    fake_ping(monkeypatch)
    _, out, _ = run_main([*PING, "-f", "value", "-c", "node", "-c", "avg", "--sort-column", "AVG"])
    assert [line.split()[1] for line in out.splitlines()] == ["0.200", "0.300", "0.500"]
    _, out, _ = run_main([*PING, "-f", "value", "-c", "avg", "--sort-column", "avg", "--sort-descending"])
    assert out.split() == ["0.500", "0.300", "0.200"]
    _, out, _ = run_main([*PING, "--sort-column", "node"])  # a sorted table repeats the node on each row
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["compute-1", "compute-2", "compute-2"]


def test_csv_has_a_header_and_quotes(monkeypatch):
    fake_ping(monkeypatch)
    _, out, _ = run_main([*PING, "-f", "csv", "-c", "node", "-c", "message"])
    assert out.splitlines() == [
        "NODE,MESSAGE",
        "compute-2,loss 50% to 10.0.0.9",
        "compute-2,loss 50% to 10.0.0.9",
        "compute-1,",
    ]
    import csv

    rows = list(csv.reader(run_main([*PING, "-f", "csv"])[1].splitlines()))
    assert rows[0][:3] == ["NODE", "STATUS", "TARGET"] and len(rows) == 4


def test_json_is_the_document_unless_columns_are_asked(monkeypatch):
    import json

    fake_ping(monkeypatch)
    _, out, err = run_main([*PING, "-f", "json"])
    doc = json.loads(out)
    assert doc["probe"] == "ping" and doc["summary"]["failed"] == 1 and len(doc["nodes"]) == 2
    assert "2/2 nodes replied" in err
    _, out, _ = run_main([*PING, "-f", "json", "-c", "node", "-c", "loss", "--noindent"])
    assert out.count("\n") == 1  # --noindent: one line
    assert json.loads(out) == [
        {"node": "compute-2", "loss": 0.0},
        {"node": "compute-2", "loss": 0.5},
        {"node": "compute-1", "loss": 0.0},
    ]
    _, out, _ = run_main([*PING, "-f", "yaml", "-c", "node", "--sort-column", "node"])
    assert out.splitlines()[0] == "- node: compute-1"


def test_old_dash_o_still_works_but_is_hidden(monkeypatch):
    import json

    fake_ping(monkeypatch)
    _, out, _ = run_main([*PING, "-o", "json"])
    assert json.loads(out)["probe"] == "ping"
    _, out, _ = run_main(["--output", "json", *PING])
    assert json.loads(out)["probe"] == "ping"
    help_text = CliRunner().invoke(cli, ["ping", "--help"], env=CLEAN_ENV).output
    assert "-f, --format [table|json|yaml|value|csv]" in help_text and "--output" not in help_text


def test_an_unknown_column_names_the_columns(monkeypatch):
    fake_ping(monkeypatch)
    code, out, err = run_main([*PING, "-c", "nope"])
    assert code == 2 and out == ""
    assert err.startswith("steth ping: error: -c/--column 'nope': no such column; columns: NODE, STATUS, TARGET")


@pytest.mark.parametrize("fmt", ["table", "json", "yaml", "value", "csv"])
def test_probes_honours_every_format(fmt):
    code, out, err = run_main(["probes", "-f", fmt])
    assert code == 0 and err == "" and "ping" in out
    code, out, _ = run_main(["-f", fmt, "probes", "show", "ping"])
    assert code == 0 and "--count" in out


def test_probes_value_column():
    from steth.schemas.probes import registry

    _, out, _ = run_main(["probes", "-f", "value", "-c", "probe", "--sort-column", "probe"])
    assert out.split() == sorted(registry())
    _, out, _ = run_main(["probes", "show", "ping", "-f", "value", "-c", "option"])
    assert "--count" in out.split() and "TARGET" in out.split() and "--targets" not in out.split()


@pytest.fixture
def no_lab(tmp_path, monkeypatch):
    """Hermetic against a lab that is up on this machine: steth finds one through this process's STETH_LAB_NAME
    or STETH_LAB_DIR (never through the `environ` a test hands to resolve). No STETH_* of the caller's, and a
    lab folder that holds no lab."""
    for key in [k for k in os.environ if k.startswith("STETH_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STETH_LAB_DIR", str(tmp_path / "no-lab"))


@pytest.mark.parametrize("fmt", ["table", "json", "yaml", "value", "csv"])
def test_lab_status_honours_every_format(fmt, no_lab):
    code, out, _ = run_main(["lab", "status", "-f", fmt])
    assert code == 3  # no lab
    if fmt in ("json", "yaml"):
        assert "up: false" in out or '"up": false' in out
    if fmt == "csv":
        assert out.startswith("NODE,ROLES,NAMESPACE")


def test_deploy_list_value():
    _, out, _ = run_main(["deploy", "list", "-f", "value", "-c", "file"])
    assert "steth-agent.service" in " ".join(out.split())


# --- 3. NATS as the nats CLI does it -----------------------------------------------------------------------


def nats_home(tmp_path, contexts: dict[str, dict], selected: str | None = None) -> dict[str, str]:
    """A HOME with `nats` CLI context files (as `nats context add` writes them) and a selected one."""
    import json

    folder = tmp_path / "home" / ".config" / "nats" / "context"
    folder.mkdir(parents=True)
    for name, settings in contexts.items():
        body = {"description": "", "url": "", "token": "", "user": "", "password": "", "creds": "", "nkey": ""}
        body.update({"cert": "", "key": "", "ca": "", "nsc": "", "inbox_prefix": "", **settings})
        (folder / f"{name}.json").write_text(json.dumps(body, indent=2))
    if selected:
        (folder.parent / "context.txt").write_text(selected)
    return {"HOME": str(tmp_path / "home"), "STETH_LAB_NAME": "hcnone"}


def resolved(flags=None, env=None, config=None, context=None):
    from steth.controller.settings import resolve

    return resolve({"servers": None, **(flags or {})}, config, context, environ=env)


def test_each_layer_in_order(tmp_path, no_lab):
    home = nats_home(
        tmp_path,
        {"picked": {"url": "nats://picked:4222", "user": "picked-user"}, "sel": {"url": "nats://sel:4222"}},
        selected="sel",
    )
    config = tmp_path / "steth.toml"
    config.write_text('[nats]\nservers = ["nats://file:4222"]\ntoken = "file-token"\n')
    env = {
        **home,
        "STETH_NATS_URL": "nats://steth-env:4222",
        "NATS_URL": "nats://nats-env:4222",
        "NATS_CONTEXT": "picked",
    }
    order = [
        ({"servers": "nats://flag:4222"}, "nats://flag:4222", "the command line"),
        ({}, "nats://steth-env:4222", "STETH_NATS_URL"),
    ]
    for flags, url, origin in order:
        r = resolved(flags, env, str(config))
        assert r.values["servers"] == [url] and r.origin["servers"] == origin
    env.pop("STETH_NATS_URL")
    assert resolved({}, env, str(config)).origin["servers"] == "NATS_URL"
    env.pop("NATS_URL")
    r = resolved({}, env, str(config))
    assert r.values["servers"] == ["nats://picked:4222"] and r.origin["servers"] == "NATS context picked"
    assert r.values["user"] == "picked-user" and r.values["token"] == "file-token"  # per setting, first wins
    env.pop("NATS_CONTEXT")
    r = resolved({}, env, str(config))
    assert r.values["servers"] == ["nats://file:4222"] and r.origin["servers"] == "the config file's [nats]"
    r = resolved({}, env, None)  # no config file: the nats CLI's selected context
    assert r.values["servers"] == ["nats://sel:4222"] and r.origin["servers"] == "the selected NATS context sel"
    (tmp_path / "home" / ".config" / "nats" / "context.txt").unlink()
    r = resolved({}, env, None)
    assert r.values["servers"] == ["nats://127.0.0.1:4222"]


def test_context_flag_beats_the_environment_context(tmp_path):
    env = nats_home(tmp_path, {"a": {"url": "nats://a:4222"}, "b": {"url": "nats://b:4222"}})
    env["NATS_CONTEXT"] = "a"
    assert resolved({}, env, context="b").values["servers"] == ["nats://b:4222"]
    assert resolved({}, env).values["servers"] == ["nats://a:4222"]


def test_credentials_and_tls_variables(tmp_path):
    env = nats_home(tmp_path, {})
    env.update(NATS_CREDS="~/x.creds", NATS_NKEY="/k.nk", NATS_CERT="/c.pem", NATS_KEY="/k.pem", NATS_CA="/ca.pem")
    env["STETH_NATS_TLS_CA"] = "/steth-ca.pem"
    v = resolved({}, env).values
    assert v["creds"] == str(tmp_path / "home" / "x.creds") or v["creds"].endswith("/x.creds")
    assert (v["nkey_seed"], v["tls_cert"], v["tls_key"], v["tls_ca"]) == ("/k.nk", "/c.pem", "/k.pem", "/steth-ca.pem")
    assert resolved({"token": "t0k", "tls_ca": "/flag-ca.pem"}, env).values["tls_ca"] == "/flag-ca.pem"


def test_a_typo_in_the_config_nats_table_is_an_error(tmp_path):
    bad = tmp_path / "steth.toml"
    bad.write_text('[nats]\nsever = ["nats://x:4222"]\n')
    code, out, err = run_main(["--config", str(bad), "agents"])
    assert (
        code == 2 and "[nats] sever: Extra inputs are not permitted" in err and err.startswith("steth agents: error:")
    )


def test_the_agent_and_the_controller_share_one_nats_model():
    from steth.agent import config as agent_config
    from steth.natsconn import NatsConfig

    assert agent_config.NatsConfig is NatsConfig
    assert agent_config.AgentConfig.model_fields["nats"].annotation is NatsConfig


def test_unknown_context_is_a_usage_error(tmp_path):
    env = nats_home(tmp_path, {})
    code, _, err = run_main(["--context", "nope", "agents"], env=env)
    assert code == 2 and "NATS context 'nope'" in err and "nats context ls" in err


def test_dead_server_names_where_it_came_from(tmp_path):
    env = nats_home(tmp_path, {"dead": {"url": "nats://127.0.0.1:1"}}, selected="dead")
    code, _, err = run_main(["agents"], env=env)
    assert code == 4 and "127.0.0.1:1 (from the selected NATS context dead)" in err
    code, _, err = run_main(["agents"], env={**env, "NATS_URL": "nats://127.0.0.1:2"})
    assert code == 4 and "127.0.0.1:2 (from NATS_URL)" in err
    code, _, err = run_main(["-s", "nats://127.0.0.1:3", "agents"], env=env)
    assert code == 4 and "127.0.0.1:3 (from the command line)" in err
    code, _, err = run_main(["--nats-url", "nats://127.0.0.1:4", "agents"], env=env)  # the old spelling
    assert code == 4 and "127.0.0.1:4" in err
    help_text = CliRunner().invoke(cli, ["--help"], env=CLEAN_ENV).output
    assert "-s, --server" in help_text and "--token" in help_text and "--nats-url" not in help_text


# --- 4. OpenStack options before or after the command ------------------------------------------------------

PORT = "3f2a1b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
CLOUDS = """clouds:
  prod:
    auth: {auth_url: "https://keystone.example:5000/v3", username: u, password: p, project_name: x,
           user_domain_name: Default, project_domain_name: Default}
    regions: [RegionOne, RegionTwo]
  other:
    auth: {auth_url: "https://other.example:5000/v3", username: u, password: p, project_name: x,
           user_domain_name: Default, project_domain_name: Default}
"""


@pytest.fixture
def fake_openstack(tmp_path, monkeypatch):
    """clouds.yaml with two clouds; the SDK connection fails at once, naming the settings it was given."""
    import openstack.connection

    (tmp_path / "clouds.yaml").write_text(CLOUDS)

    class Refused(Exception):
        pass

    def connection(config):
        c = config.config
        raise Refused(
            f"cloud={config.name} region={config.region_name} cacert={c.get('cacert')} verify={c.get('verify')} "
            f"timeout={c.get('api_timeout')}"
        )

    monkeypatch.setattr(openstack.connection, "Connection", connection)
    return {"OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml")}


@pytest.mark.parametrize(
    "args",
    [
        ["--os-cloud", "prod", "--os-region-name", "RegionTwo", "port-check", PORT],
        ["port-check", PORT, "--os-cloud", "prod", "--os-region-name", "RegionTwo"],
        ["--os-cloud", "other", "port-check", PORT, "--os-cloud", "prod", "--os-region-name", "RegionTwo"],
        ["--os-region-name", "RegionTwo", "port-check", "--os-cloud", "prod", PORT],
    ],
    ids=["before", "after", "after-wins", "split"],
)
def test_openstack_options_before_or_after_the_command(fake_openstack, args):
    code, out, err = run_main(args, env=fake_openstack)
    assert code == 4 and out == ""
    assert "cloud=prod region=RegionTwo cacert=None verify=True timeout=10" in err, err
    assert err.startswith("steth port-check: error: OpenStack configuration")


def test_os_cloud_flag_beats_the_variable(fake_openstack):
    code, _, err = run_main(["port-check", PORT, "--os-cloud", "prod"], env={**fake_openstack, "OS_CLOUD": "other"})
    assert "cloud=prod" in err
    code, _, err = run_main(["port-check", PORT], env={**fake_openstack, "OS_CLOUD": "other"})
    assert "cloud=other" in err


def test_cacert_insecure_and_api_timeout(fake_openstack):
    args = [
        "--os-cloud",
        "prod",
        "--insecure",
        "vm-check",
        "srv",
        "--os-cacert",
        "/etc/ca.pem",
        "--os-api-timeout",
        "3",
    ]
    code, _, err = run_main(args, env=fake_openstack)
    assert code == 4 and "cacert=/etc/ca.pem verify=False timeout=3" in err, err
    code, _, err = run_main(
        ["--os-cloud", "prod", "network-check", "net1", "--os-region-name", "RegionOne"], env=fake_openstack
    )
    assert "region=RegionOne cacert=None verify=True" in err, err


def test_every_openstack_command_takes_the_options_after_it():
    for path in (["port-check"], ["vm-check"], ["network-check"], ["agents"], []):
        text = CliRunner().invoke(cli, [*path, "--help"], env=CLEAN_ENV).output
        for option in ("--os-cloud NAME", "--os-region-name REGION", "--os-cacert FILE", "--insecure"):
            assert option in text, (path, option)


def test_debug_logs_the_api_traffic(fake_openstack, monkeypatch):
    import openstack

    from steth.controller.inventory import InventoryError

    calls = []
    monkeypatch.setattr(openstack, "enable_logging", lambda **kw: calls.append(kw))
    with pytest.raises(InventoryError):  # --debug: the traceback instead of one line
        run_main(["--debug", "--os-cloud", "prod", "port-check", PORT], env=fake_openstack)
    assert calls == [{"debug": True, "http_debug": True}]
    calls.clear()
    run_main(["--os-cloud", "prod", "port-check", PORT], env=fake_openstack)
    assert calls == []


# --- 5. errors in the operator's words ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["capture", "--interface", "eth0", "--max-pcap", "1"],
            "steth capture: error: --max-pcap: Input should be greater than or equal to 1024",
        ),
        (
            ["vlan-check", "--interface", "eth0", "--vlan", "5000"],
            "steth vlan-check: error: --vlan 5000: Input should be less than or equal to 4094",
        ),
        (["tcp-check", "10.0.0.1"], "steth tcp-check: error: HOST:PORT 10.0.0.1: expected HOST:PORT"),
        (
            ["ping", "--count", "0", "10.0.0.1"],
            "steth ping: error: --count: Input should be greater than or equal to 1",
        ),
        (["ping", "--", "-rf"], "steth ping: error: TARGET: '-rf' does not appear to be an IPv4 or IPv6 address"),
        (["capture"], "steth capture: error: Missing option '--interface'."),
        (["mtu", "--expect", "1500"], "steth mtu: error: Missing argument 'TARGET'"),
        (
            ["link", "add-vlan", "--parent", "eth0", "--vlan", "5000"],
            "steth link add-vlan: error: --vlan: Input should be",
        ),
        (
            ["link", "add-vlan", "--parent", "eth0", "--vlan-id", "0"],
            "steth link add-vlan: error: --vlan: Input should be",
        ),
        (["send", "--interface", "eth0", "--packet", "udp"], "steth send: error: udp needs a TARGET address"),
        (["lab", "status", "-c", "nope"], "steth lab status: error: -c/--column 'nope': no such column"),
    ],
)
def test_errors_name_the_option_and_the_command(args, line):
    code, out, err = run_main(["-s", "nats://127.0.0.1:1", *args])
    assert code == 2 and out == "", (code, out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith(line), err


def test_required_options_are_marked_in_help():
    for path, option in ((["capture"], "--interface"), (["send"], "--interface"), (["link", "add-vlan"], "--parent")):
        text = CliRunner().invoke(cli, [*path, "--help"], env=CLEAN_ENV).output
        block = text[text.index("Options:") :]
        block = block[block.index(option) :].split("\n  -")[0]
        assert "[required]" in " ".join(block.split()), (path, block)


def test_probes_show_lists_the_real_options_with_readable_defaults():
    import json

    code, out, _ = run_main(["probes", "show", "ping", "-f", "json"])
    params = {p["name"]: p for p in json.loads(out)["params"]}
    assert params["targets"]["option"] == "TARGET" and params["count"]["option"] == "--count"
    _, out, _ = run_main(["probes", "show", "ping"])
    table = out[out.index("parameters:") : out.index("result fields:")]
    assert "None" not in table and "False" not in table and "--dont-fragment  boolean        no" in table
    for probe, field, option in (
        ("vlan-check", "vlans", "--vlan"),
        ("mtu", "target", "TARGET"),
        ("link-add-vlan", "vlan_id", "--vlan"),
        ("send", "dst", "TARGET"),
        ("capture", "max_pcap_bytes", "--max-pcap"),
    ):
        _, out, _ = run_main(["probes", "show", probe, "-f", "json"])
        assert {p["name"]: p["option"] for p in json.loads(out)["params"]}[field] == option, probe


def test_one_name_per_idea_old_spellings_hidden():
    for path, shown, hidden in (
        (["link", "add-vlan"], "--vlan INTEGER", "--vlan-id"),
        (["mtu"], "TARGET", "--to"),
        (["send"], "[TARGET]", "--dst"),
    ):
        text = CliRunner().invoke(cli, [*path, "--help"], env=CLEAN_ENV).output
        assert shown in text and hidden not in text, (path, text)


# --- 9. shell completion ------------------------------------------------------------------------------------


def complete(words: str, env: dict | None = None) -> list[str]:
    """What bash completion offers after `words` (Click's protocol: _STETH_COMPLETE=bash_complete)."""
    args = words.split()
    cword = len(args) if words.endswith(" ") else len(args) - 1
    result = CliRunner().invoke(
        cli,
        [],
        prog_name="steth",
        env={
            **CLEAN_ENV,
            **(env or {}),
            "_STETH_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        },
    )
    return [line.split(",", 1)[1] for line in result.output.splitlines() if "," in line]


def test_completes_commands_and_probe_names():
    assert "port-check" in complete("steth po") and "ping" not in complete("steth po")
    assert complete("steth probes show pi") == ["ping"]
    assert complete("steth history --probe tcp") == ["tcp-check"]


def test_completes_node_and_role_names_from_presence(monkeypatch):
    from types import SimpleNamespace

    from steth.controller import completion

    fake = {
        n: SimpleNamespace(info=SimpleNamespace(node=n, roles=r))
        for n, r in (("compute-1", ["compute"]), ("compute-2", ["compute"]), ("network-1", ["network", "l3"]))
    }
    seen = []
    monkeypatch.setattr(completion, "_present", lambda ctx: seen.append(ctx.find_root().params.get("server")) or fake)
    assert complete("steth ping 10.0.0.1 --node comp") == ["compute-1", "compute-2"]
    assert complete("steth -s nats://x:4222 mesh --role ") == ["compute", "l3", "network"]
    assert seen[-1] == "nats://x:4222"  # the same NATS settings as the command would use


def test_no_nats_means_silently_nothing_and_quickly():
    started = time.monotonic()
    assert complete("steth -s nats://127.0.0.1:1 ping --node ") == []
    assert time.monotonic() - started < 3


def test_completion_is_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert "_STETH_COMPLETE=bash_source steth" in text and "_STETH_COMPLETE=zsh_source" in text
