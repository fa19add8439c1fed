"""Agent configuration: a TOML file, STETH_* variables on top, and one clear line for a bad value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from steth.agent.config import AgentConfig, _merge, env_overrides, load
from steth.agent.main import main as agent_main
from steth.schemas.types import describe_validation_error

EXAMPLE = Path(__file__).parents[2] / "deploy" / "systemd" / "agent.toml.example"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def error_of(path, environ) -> str:
    with pytest.raises(ValueError) as exc:
        load(path, environ)
    text = describe_validation_error(exc.value) if isinstance(exc.value, ValidationError) else str(exc.value)
    assert "\n" not in text
    return text


def test_defaults_without_file_or_environment():
    cfg = load(None, {})
    assert cfg.roles == [] and cfg.heartbeat_s == 5.0 and cfg.presence_ttl_s == 15.0
    assert cfg.nats.servers == ["nats://127.0.0.1:4222"] and cfg.policy.allow_mutating is False
    assert cfg.concurrency_for("ping") == 4 and cfg.metrics.listen is None


def test_the_shipped_example_loads():
    cfg = load(EXAMPLE, {})
    assert cfg.roles == ["compute"] and cfg.data_plane == "192.0.2.0/24"
    assert cfg.concurrency_for("ping") == 8 and cfg.concurrency_for("hello") == 4
    assert len(cfg.nats.servers) == 3 and cfg.nats.tls_ca == "/etc/steth/ca.pem"


def test_file_values(tmp_path):
    path = write(
        tmp_path,
        'node = "cmp-7.example.org"\nroles = ["compute", "network"]\nheartbeat_s = 2\n'
        'presence_ttl_s = 6\n[nats]\nservers = ["nats://10.0.0.1:4222"]\nuser = "agent"\n'
        '[policy]\nallow_mutating = true\n[metrics]\nlisten = "10.0.0.5:9273"\n',
    )
    cfg = load(path, {})
    assert cfg.node == "cmp-7.example.org" and cfg.roles == ["compute", "network"]
    assert cfg.heartbeat_s == 2 and cfg.presence_ttl_s == 6
    assert cfg.nats.servers == ["nats://10.0.0.1:4222"] and cfg.nats.user == "agent"
    assert cfg.policy.allow_mutating is True and cfg.metrics.listen == "10.0.0.5:9273"


def test_environment_overrides_top_level_lists_and_nested_sections(tmp_path):
    path = write(
        tmp_path,
        'node = "from-file"\nroles = ["compute"]\n[nats]\nservers = ["nats://file:4222"]\n'
        'user = "file-user"\n[policy]\nallow_mutating = true\n',
    )
    env = {
        "STETH_NODE": "from-env",
        "STETH_ROLES": "network, compute ,",  # comma-separated, blanks dropped
        "STETH_HEARTBEAT_S": "0.5",
        "STETH_PRESENCE_TTL_S": "1.5",
        "STETH_NATS_SERVERS": "nats://a:4222,nats://b:4222",
        "STETH_NATS_PASSWORD": " spaced secret ",  # strings are taken as they are
        "STETH_POLICY_ALLOW_MUTATING": "no",
        "STETH_METRICS_LISTEN": "127.0.0.1:9273",
        "STETH_UNRELATED": "ignored",
        "PATH": "/usr/bin",
    }
    cfg = load(path, env)
    assert cfg.node == "from-env" and cfg.roles == ["network", "compute"]
    assert cfg.heartbeat_s == 0.5 and cfg.presence_ttl_s == 1.5
    assert cfg.nats.servers == ["nats://a:4222", "nats://b:4222"]
    assert cfg.nats.user == "file-user", "a variable for one key keeps the section's other keys"
    assert cfg.nats.password == " spaced secret "
    assert cfg.policy.allow_mutating is False
    assert cfg.metrics.listen == "127.0.0.1:9273"


def test_optional_list_variables_are_split_too():
    cfg = load(
        None, {"STETH_POLICY_ALLOWED_INTERFACES": "eth*, br-ex", "STETH_POLICY_ALLOWED_TARGET_CIDRS": "10.0.0.0/8"}
    )
    assert cfg.policy.allowed_interfaces == ["eth*", "br-ex"]
    assert cfg.policy.allowed_target_cidrs == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("true", True),
        ("1", True),
        ("YES", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("No", False),
        (" off ", False),
    ],
)
def test_boolean_variables(text, expected):
    assert load(None, {"STETH_POLICY_ALLOW_MUTATING": text}).policy.allow_mutating is expected


def test_env_overrides_only_names_known_keys():
    out = env_overrides({"STETH_ROLES": "", "STETH_NATS_TOKEN": "t", "STETH_CONFIG": "/x", "STETH_NATS_URL": "u"})
    assert out == {"roles": [], "nats": {"token": "t"}}


@pytest.mark.parametrize(
    "environ, words",
    [
        ({"STETH_POLICY_ALLOW_MUTATING": "maybe"}, "policy.allow_mutating: Input should be a valid boolean"),
        ({"STETH_HEARTBEAT_S": "fast"}, "heartbeat_s: Input should be a valid number"),
        ({"STETH_HEARTBEAT_S": "0.01"}, "heartbeat_s: Input should be greater than or equal to 0.2"),
        ({"STETH_NODE": "-rf"}, "invalid node name '-rf'"),
        ({"STETH_NODE": "a b"}, "invalid node name 'a b'"),
        ({"STETH_ROLES": "compute,Bad Role"}, "invalid role 'Bad Role'"),
        ({"STETH_LOG_LEVEL": "loud"}, "invalid log level 'loud'"),
        ({"STETH_NATS_CONNECT_TIMEOUT_S": "0"}, "nats.connect_timeout_s: Input should be greater than 0"),
        ({"STETH_HEARTBEAT_S": "10"}, "presence_ttl_s (15) must be at least twice heartbeat_s (10)"),
    ],
)
def test_bad_environment_values_are_clear_errors(environ, words):
    assert words in error_of(None, environ)


@pytest.mark.parametrize(
    "text, words",
    [
        ("colour = 'blue'\n", "colour: Extra inputs are not permitted"),
        ("[nats]\nserver = ['nats://x']\n", "nats.server: Extra inputs are not permitted"),
        ("[concurrency]\nping = 0\n", "concurrency for 'ping' must be 1..256, not 0"),
        ("roles = 'compute'\n", "roles: Input should be a valid list"),
        ("heartbeat_s = 5\npresence_ttl_s = 99999\n", "presence_ttl_s: Input should be less than or equal to 3600"),
        ("roles = [\n", "is not valid TOML"),
    ],
)
def test_bad_file_values_are_clear_errors(tmp_path, text, words):
    assert words in error_of(write(tmp_path, text), {})


def test_missing_file(tmp_path):
    assert f"config file {tmp_path / 'nope.toml'} does not exist" == error_of(tmp_path / "nope.toml", {})


def test_concurrency_keeps_a_default():
    cfg = AgentConfig(concurrency={"ping": 2})
    assert cfg.concurrency_for("ping") == 2 and cfg.concurrency_for("other") == 4


# --- steth-agent check-config: the operator's view ------------------------------------------------


def test_check_config_prints_effective_settings_with_secrets_hidden(tmp_path):
    path = write(tmp_path, 'insecure = true\n[nats]\npassword = "hunter2"\n')
    result = CliRunner().invoke(
        agent_main, ["check-config", "--config", str(path)], env={"STETH_NATS_TOKEN": "tok", "STETH_ROLES": "compute"}
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["nats"]["password"] == "***" and shown["nats"]["token"] == "***"
    assert shown["roles"] == ["compute"]
    assert "hunter2" not in result.output and 'tok"' not in result.output


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["check-config"], {"STETH_HEARTBEAT_S": "soon"}, "steth-agent: bad configuration: heartbeat_s:"),
        (
            ["check-config", "--config", "/nonexistent/agent.toml"],
            {},
            "steth-agent: config file /nonexistent/agent.toml does not exist",
        ),
        (["run"], {"STETH_POLICY_ALLOW_MUTATING": "perhaps"}, "steth-agent: bad configuration: policy.allow_mutating:"),
    ],
)
def test_bad_config_exits_2_with_one_line(args, env, words):
    result = CliRunner().invoke(agent_main, args, env=env)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(words), result.stderr
    assert result.stdout == ""


# --- secure as shipped: the agent refuses an open configuration (issue 12, item 1b) -----------------------

SECURE = (
    '[nats]\nservers = ["nats://127.0.0.1:4222"]\ntls_ca = "/etc/steth/ca.pem"\nnkey_seed = "/etc/steth/agent.nk"\n'
    '[security]\nrequire_signed = true\ntrusted_keys = ["{key}"]\n'
)


@pytest.fixture
def pubkey():
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "steth-ed25519 " + base64.b64encode(raw).decode()


def gaps_of(text: str, env: dict | None = None):
    from steth.agent.config import security_gaps

    cfg = AgentConfig.model_validate(_merge(__import__("tomllib").loads(text), env_overrides(env or {})))
    return security_gaps(cfg)


def test_a_secure_config_has_no_gaps(pubkey):
    assert gaps_of(SECURE.format(key=pubkey)) == []
    # tls:// URLs, and each kind of credentials, count as well
    text = SECURE.format(key=pubkey).replace('tls_ca = "/etc/steth/ca.pem"\n', "").replace("nats://", "tls://")
    assert gaps_of(text) == []
    for creds in ('creds = "/etc/steth/a.creds"', 'user = "agent-x"\npassword = "p"'):
        assert gaps_of(text.replace('nkey_seed = "/etc/steth/agent.nk"', creds)) == []


def test_each_missing_piece_is_one_line_with_its_fix(pubkey):
    assert len(gaps_of("")) == 3  # the defaults: no TLS, no credentials, unsigned requests accepted
    secure = SECURE.format(key=pubkey)
    (tls,) = gaps_of(secure.replace('tls_ca = "/etc/steth/ca.pem"\n', ""))
    assert tls.startswith("no TLS") and "tls_ca" in tls
    (creds,) = gaps_of(secure.replace('nkey_seed = "/etc/steth/agent.nk"\n', 'token = "t"\n'))
    assert creds.startswith("no NATS credentials") and "nkey_seed" in creds and "token is not an identity" in creds
    (creds,) = gaps_of(secure.replace('nkey_seed = "/etc/steth/agent.nk"\n', 'user = "u"\n'))  # no password
    assert creds.startswith("no NATS credentials")
    (signed,) = gaps_of(secure.replace("require_signed = true", "require_signed = false"))
    assert signed.startswith("unsigned requests are accepted") and "require_signed = true" in signed
    # Loopback is no exception.
    assert len(gaps_of('[nats]\nservers = ["nats://127.0.0.1:4222"]\n')) == 3
    # The environment counts as the file does.
    assert gaps_of("", {"STETH_NATS_TLS_CA": "/ca", "STETH_NATS_NKEY_SEED": "/s"}) == [gaps_of("")[2]]


def test_run_refuses_an_open_config_with_exit_2_one_line_per_gap(tmp_path):
    path = write(tmp_path, '[nats]\nservers = ["nats://127.0.0.1:1"]\n')
    result = CliRunner().invoke(agent_main, ["run", "--config", str(path)], env={})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("steth-agent: insecure configuration: ") for line in lines[:3])
    assert "refusing to start" in lines[3] and "insecure = true" in lines[3]
    assert result.stdout == ""


def test_check_config_explains_and_exits_2(tmp_path, pubkey):
    path = write(tmp_path, SECURE.format(key=pubkey).replace("require_signed = true", "require_signed = false"))
    result = CliRunner().invoke(agent_main, ["check-config", "--config", str(path)], env={})
    assert result.exit_code == 2
    assert json.loads(result.stdout)["insecure"] is False
    err = result.stderr.strip().splitlines()
    assert err[0].startswith("steth-agent: error: unsigned requests are accepted") and "steth keys create" in err[0]
    assert "insecure = true" in err[-1]
    path = write(tmp_path, SECURE.format(key=pubkey))
    result = CliRunner().invoke(agent_main, ["check-config", "--config", str(path)], env={})
    assert result.exit_code == 0 and result.stderr == ""


def test_insecure_true_in_so_many_words(tmp_path):
    """Only the key itself opens it: the top-level `insecure = true`, or STETH_INSECURE=true."""
    path = write(tmp_path, "insecure = true\n")
    result = CliRunner().invoke(agent_main, ["check-config", "--config", str(path)], env={})
    assert result.exit_code == 0 and result.stderr.count("warning (insecure = true)") == 3
    assert (
        gaps_of("", {"STETH_INSECURE": "true"})
        and AgentConfig.model_validate(env_overrides({"STETH_INSECURE": "true"})).insecure
    )
    with pytest.raises(ValidationError):
        AgentConfig.model_validate({"insecure": "perhaps"})
