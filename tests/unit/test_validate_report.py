"""The validate report: exit code from statuses, terminal lines, JSON, JUnit XML parsed back, escaped HTML,
and the HTML page rendered by a real headless browser (Debian's chromium; scripts/setup-browser.sh)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from browser import NO_CHROMIUM, chromium, png_stats, render

from steth.controller.validate_plan import load_plan
from steth.controller.validate_report import (
    Finding,
    Progress,
    Report,
    RequirementResult,
    exit_code,
    pair_matrix,
    progress_json,
    progress_line,
    render_html,
    render_json,
    render_junit,
    render_terminal,
    vlan_matrix,
)
from steth.controller.validate_requirements import requirements

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "site.yaml"
HOSTILE = "<script>alert('x')</script> & \"quoted\" \x00\x07"


def sample_report() -> Report:
    plan = load_plan(EXAMPLE)
    reqs = {r.id: r for r in requirements(plan)}
    results = [
        RequirementResult.of(reqs["presence"], "pass", measured="3/3 present"),
        RequirementResult.of(reqs["mesh:data"], "pass", measured="0.0% loss", value=0.0, unit="ratio"),
        RequirementResult.of(
            reqs["mtu:data"],
            "fail",
            measured="1450 bytes (lowest pair)",
            value=1450,
            unit="bytes",
            nodes=["compute-1", "compute-2"],
            findings=[
                Finding(
                    requirement="mtu:data",
                    status="fail",
                    message="path MTU 1450 < 1500 from compute-1 to compute-2",
                    nodes=["compute-1", "compute-2"],
                    detail=f"agent said: {HOSTILE}",
                )
            ],
        ),
        RequirementResult.of(
            reqs["vlan:physnet1"],
            "incomplete",
            measured="no reply",
            nodes=["network-1"],
            findings=[Finding(requirement="vlan:physnet1", status="incomplete", message="network-1: no_reply")],
        ),
        RequirementResult.of(reqs["bandwidth:data"], "pass", measured="2.1 Gbit/s (lowest pair)", value=2.1e9),
    ]
    nodes = ["compute-1", "compute-2", "network-1"]
    mtu = pair_matrix(
        "plane data",
        "path MTU (bytes), from row to column",
        nodes,
        {
            ("compute-1", "compute-2"): ("1450", "fail", HOSTILE),
            ("compute-2", "network-1"): ("1500", "pass", ""),
        },
    )
    vlans = list(range(100, 300))
    vlan = vlan_matrix(
        "physnet1",
        vlans,
        {
            ("compute-1", "compute-2"): {v: ("pass", "") for v in vlans},
            ("compute-1", "network-1"): {v: ("incomplete", "network-1 no_reply") for v in vlans},
        },
    )
    return Report(
        plan=str(EXAMPLE), site="lab", elapsed_s=42.5, steth_version="0.1.0", requirements=results, matrices=[mtu, vlan]
    )


# --- exit code ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statuses, code",
    [
        (["pass", "pass"], 0),
        (["pass", "fail"], 1),
        (["pass", "incomplete"], 3),
        (["fail", "incomplete"], 1),  # a finding is a finding, even with gaps
        ([], 3),  # nothing checked is not a pass
    ],
)
def test_exit_code(statuses, code):
    assert exit_code(statuses) == code


def test_exit_code_refuses_unknown_statuses():
    with pytest.raises(ValueError, match="unknown requirement status: ok"):
        exit_code(["ok"])


def test_report_exit_code_is_the_same_function():
    assert sample_report().exit_code() == 1


# --- terminal and JSON ------------------------------------------------------------------------------------


def test_terminal_one_line_per_requirement_and_a_footer():
    report = sample_report()
    lines = render_terminal(report).splitlines()
    assert lines[0].split() == ["STATUS", "REQUIREMENT", "MEASURED", "NODES"]
    body = lines[1 : 1 + len(report.requirements)]
    assert [line.split()[0] for line in body] == ["PASS", "PASS", "FAIL", "INCOMPLETE", "PASS"]
    assert "1450 bytes (lowest pair)" in body[2] and "compute-1, compute-2" in body[2]
    footer = lines[1 + len(report.requirements)]
    assert footer == "5 requirements: 3 pass, 1 fail, 1 incomplete in 42.5 s"
    assert lines[-2].startswith("  fail: mtu:data: path MTU 1450 < 1500")
    assert lines[-1] == "  incomplete: vlan:physnet1: network-1: no_reply"


def test_json_document():
    doc = render_json(sample_report())
    json.dumps(doc)  # serialisable as is
    assert doc["summary"] == {"requirements": 5, "pass": 3, "fail": 1, "incomplete": 1, "exit_code": 1}
    assert [f["requirement"] for f in doc["findings"]] == ["mtu:data", "vlan:physnet1"]
    assert doc["requirements"][2]["value"] == 1450 and doc["requirements"][2]["unit"] == "bytes"
    assert {m["section"] for m in doc["matrices"]} == {"plane data", "physnet physnet1"}


def test_progress_lines_and_json():
    p = Progress(event="done", requirement="mtu:data", index=3, total=10, status="fail", measured="1450", elapsed_s=2)
    assert progress_line(p) == "[ 3/10]    2.0s mtu:data: FAIL 1450"
    assert json.loads(progress_json(p))["status"] == "fail"


# --- JUnit XML -------------------------------------------------------------------------------------------


def test_junit_parses_back_with_one_testcase_per_requirement():
    report = sample_report()
    root = ET.fromstring(render_junit(report).encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "steth validate lab" and suite.get("tests") == "5" and suite.get("skipped") == "0"
    assert suite.find("properties/property[@name='plan']").get("value") == str(EXAMPLE)
    cases = suite.findall("testcase")
    assert [c.get("name").split(":", 2)[0] + ":" + c.get("name").split(":", 2)[1] for c in cases][:1] == [
        "presence: nodes present as planned"
    ]
    assert [c.get("classname") for c in cases] == [
        "steth.validate.presence",
        "steth.validate.mesh",
        "steth.validate.mtu",
        "steth.validate.vlan",
        "steth.validate.bandwidth",
    ]
    failed = cases[2]
    (failure,) = failed.findall("failure")
    assert failure.get("message") == "path MTU 1450 < 1500 from compute-1 to compute-2"
    assert "<script>" in failure.text  # XML escaping round-trips the text; control characters replaced
    assert "\x00" not in failure.text and "\ufffd" in failure.text
    assert failed.find("system-out").text.startswith("measured: 1450 bytes (lowest pair)")
    (error,) = cases[3].findall("error")
    assert error.get("type") == "incomplete" and error.get("message") == "network-1: no_reply"
    for case in (cases[0], cases[1], cases[4]):
        assert case.find("failure") is None and case.find("error") is None
    # The element order the common JUnit schema (junit-10.xsd) wants.
    assert [child.tag for child in suite] == ["properties"] + ["testcase"] * 5
    for case in cases:
        assert [child.tag for child in case][-1] == "system-out"


# --- HTML ------------------------------------------------------------------------------------------------


def test_html_is_self_contained_and_escaped():
    page = render_html(sample_report())
    assert "<script" not in page.lower().replace("&lt;script", "")  # only the escaped form
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "\x00" not in page
    for external in ("http://", "https://", "src=", "<link", "@import"):
        assert external not in page
    assert "default-src 'none'" in page
    # Findings come before the requirements table and the matrices.
    assert page.index('id="findings"') < page.index('id="requirements"') < page.index('id="matrices"')
    assert page.count('class="finding"') == 2
    assert "<h2>plane data</h2>" in page and "<h2>physnet physnet1</h2>" in page
    assert 'class="matrix compact"' in page  # 200 VLAN columns


def test_html_without_findings_says_so():
    report = sample_report()
    report.requirements = [r for r in report.requirements if r.status == "pass"]
    page = render_html(report)
    assert "No findings: every requirement passed." in page and "Findings (0)" in page


@pytest.mark.skipif(chromium() is None, reason=NO_CHROMIUM)
def test_html_renders_findings_in_headless_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report()))
    shot = tmp_path / "report.png"
    rendered, done = render(page, tmp_path, screenshot=shot)
    assert "Findings (2)" in rendered
    assert "path MTU 1450 &lt; 1500 from compute-1 to compute-2" in rendered
    assert "network-1: no_reply" in rendered
    # The hostile string is text in the DOM, never an element: no <script> element came to be.
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in rendered
    assert "<script>" not in rendered
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, distinct_rows = png_stats(shot.read_bytes())
    assert (width, height) == (1280, 1600)
    assert distinct_rows > 50, "the screenshot is (nearly) blank"
