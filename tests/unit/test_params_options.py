"""CLI options derived from a params model, and collect(): out-of-bounds values are usage errors (exit 2)."""

from __future__ import annotations

from typing import Literal

import click
import pytest
from click.testing import CliRunner
from pydantic import Field

from steth.controller.errors import EXIT_USAGE, UsageError
from steth.controller.params import collect, option_name, params_options, wire_args
from steth.schemas.probes import registry
from steth.schemas.probes.ping import PingParams
from steth.schemas.types import InterfaceName, IPAddress, Params


class Sample(Params):
    target: IPAddress
    duration_s: float = Field(2.0, ge=0.5, le=30, description="how long")
    rate_bps: int = Field(0, ge=0, le=10**10, description="0: unlimited")
    mode: Literal["tcp", "udp"] = "tcp"
    ports: list[int] = Field(default_factory=list, max_length=8)
    interface: InterfaceName | None = None
    reverse: bool = False


def command_for(model, exclude=()):
    seen: dict = {}

    @click.command()
    @params_options(model, exclude=exclude)
    def cmd(**options):
        seen.update(options)

    return cmd, seen


@pytest.mark.parametrize(
    "field, flag, metavar",
    [
        ("interval_s", "--interval", "S"),
        ("rtt_ms", "--rtt", "MS"),
        ("size_bytes", "--size", "BYTES"),
        ("rate_bps", "--rate", "BPS"),
        ("max_loss", "--max-loss", None),
        ("dont_fragment", "--dont-fragment", None),
    ],
)
def test_option_names_drop_the_unit_suffix(field, flag, metavar):
    assert option_name(field) == (flag, metavar)


def test_help_shows_units_defaults_and_bounds():
    cmd, _ = command_for(Sample)
    text = CliRunner().invoke(cmd, ["--help"]).output
    assert "--duration S" in text and "how long [default: 2.0] [0.5..30]" in text
    assert "--rate BPS" in text and "[default: 0]" in text  # a zero default is still a default
    assert "--mode [tcp|udp]" in text and "--ports TEXT" in text and "--reverse" in text  # pydantic converts
    assert "PydanticUndefined" not in text and "--target TEXT" in text


def test_unset_options_stay_none_so_the_model_defaults_apply():
    cmd, seen = command_for(Sample, exclude=("target",))  # a required field's option is required by Click
    assert CliRunner().invoke(cmd, []).exit_code == 0
    assert seen == {
        "duration_s": None,
        "rate_bps": None,
        "mode": None,
        "ports": (),
        "interface": None,
        "reverse": None,
    }
    params = collect(Sample, seen, target="10.0.0.1")
    assert params == Sample(target="10.0.0.1")
    assert wire_args(params) == {"target": "10.0.0.1"}, "only what differs from the defaults goes on the wire"


def test_given_options_reach_the_model():
    cmd, seen = command_for(Sample)
    result = CliRunner().invoke(
        cmd,
        [
            "--target",
            "::1",
            "--duration",
            "5",
            "--mode",
            "udp",
            "--ports",
            "80",
            "--ports",
            "443",
            "--reverse",
            "--interface",
            "eth0",
        ],
    )
    assert result.exit_code == 0, result.output
    params = collect(Sample, seen)
    assert wire_args(params) == {
        "target": "::1",
        "duration_s": 5.0,
        "mode": "udp",
        "ports": [80, 443],
        "interface": "eth0",
        "reverse": True,
    }


def test_click_type_errors_are_exit_2():
    cmd, _ = command_for(Sample)
    for args in (["--duration", "long"], ["--mode", "sctp"], ["--rate", "1.5"], ["--bogus"]):
        result = CliRunner().invoke(cmd, args)
        assert result.exit_code == EXIT_USAGE, args
        assert [line for line in result.output.splitlines() if line.startswith("Error:")], result.output


@pytest.mark.parametrize(
    "options, fixed, words",
    [
        ({"duration_s": 0.1}, {"target": "10.0.0.1"}, "--duration: Input should be greater than or equal to 0.5"),
        ({"duration_s": 31.0}, {"target": "10.0.0.1"}, "--duration: Input should be less than or equal to 30"),
        ({"ports": tuple(range(9))}, {"target": "10.0.0.1"}, "--ports: List should have at most 8 items"),
        ({"interface": "-evil"}, {"target": "10.0.0.1"}, "--interface: '-evil' is not an interface name"),
        ({}, {"target": "-c1"}, "--target: '-c1' does not appear to be an IPv4 or IPv6 address"),
        ({}, {}, "missing option '--target'"),
    ],
)
def test_collect_refuses_out_of_bounds_as_a_usage_error(options, fixed, words):
    with pytest.raises(UsageError) as exc:
        collect(Sample, options, **fixed)
    assert exc.value.exit_code == EXIT_USAGE
    assert str(exc.value).startswith(words) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"count": 0}, "--count: Input should be greater than or equal to 1"),
        ({"count": 1001}, "--count: Input should be less than or equal to 1000"),
        ({"interval_s": 0.001}, "--interval: Input should be greater than or equal to 0.01"),
        ({"size_bytes": 65508}, "--size: Input should be less than or equal to 65507"),
        ({"max_loss": 1.5}, "--max-loss: Input should be less than or equal to 1"),
        ({"netns": "../etc"}, "--netns: '../etc' is not a namespace name"),
    ],
)
def test_ping_bounds(options, words):
    with pytest.raises(UsageError) as exc:
        collect(PingParams, options, targets=["10.0.0.1"])
    assert str(exc.value).startswith(words) and exc.value.exit_code == EXIT_USAGE


def test_collect_ignores_options_that_are_not_params():
    params = collect(PingParams, {"count": 2, "plane": "10.0.0.0/24", "yes": True}, targets=["10.0.0.1"])
    assert params.count == 2


@pytest.mark.parametrize("name", sorted(registry()))
def test_every_probe_derives_options(name):
    """Each declared params model turns into click options without error, one per field."""
    spec = registry()[name]
    cmd, _ = command_for(spec.params)
    flags = {o for p in cmd.params for o in p.opts}
    assert {option_name(f)[0] for f in spec.params.model_fields} <= flags
    assert CliRunner().invoke(cmd, ["--help"]).exit_code == 0
