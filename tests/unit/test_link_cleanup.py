"""Link cleanup matches the link a request made by its kernel index, not only its name (issue 12, item 7).

A fake kernel stands in for `ip`: a link made by link-setup disappears (someone deleted it) and another one
with the same name appears, unmarked, with another index. At expiry the job must leave it alone.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from steth.agent import procs
from steth.agent.probes import linkutil


class Kernel:
    def __init__(self) -> None:
        self.links: dict[str, dict] = {}
        self.next_index = 10
        self.deleted: list[str] = []

    def add(self, name: str, alias: str = "") -> int:
        self.next_index += 1
        self.links[name] = {"ifname": name, "ifindex": self.next_index, "ifalias": alias, "flags": []}
        return self.next_index

    async def ip(self, ctx, *args: str) -> procs.Completed:
        ok = procs.Completed(["ip", *args], 0, "", "")
        if args[:4] == ("-d", "-j", "addr", "show") and len(args) == 6:
            link = self.links.get(args[5])
            if link is None:
                return procs.Completed(["ip", *args], 1, "", f'Device "{args[5]}" does not exist.')
            return procs.Completed(["ip", *args], 0, json.dumps([{k: v for k, v in link.items() if v != ""}]), "")
        if args[:2] == ("link", "add"):
            self.add(args[2])
            if "peer" in args:
                self.add(args[args.index("peer") + 2])
            return ok
        if args[:3] == ("link", "set", "dev") and args[4] == "alias":
            self.links[args[3]]["ifalias"] = args[5]
            return ok
        if args[:3] == ("link", "del", "dev"):
            self.links.pop(args[3], None)
            self.deleted.append(args[3])
            return ok
        raise AssertionError(f"unexpected ip {args}")


@pytest.fixture
def kernel(monkeypatch):
    k = Kernel()
    monkeypatch.setattr(linkutil, "ip", k.ip)
    return k


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_expiry_leaves_a_same_named_link_it_did_not_make(kernel):
    plumbing = linkutil.Plumbing(ctx=None, mark=linkutil.mark_for("req1", 2e9), kind="veth")
    run(linkutil.create(None, plumbing, ["st0", "st0p"], ["st0", "type", "veth", "peer", "name", "st0p"]))
    assert plumbing.indexes == {"st0": 11, "st0p": 12}
    # Someone deletes the pair and makes their own st0 (no alias, another index).
    kernel.links.clear()
    kernel.add("st0")
    rows = run(plumbing.remove(at_expiry=True))
    assert "st0" in kernel.links and kernel.deleted == []
    assert [(r.name, r.action) for r in rows] == [("st0", "refused")]
    assert "index 13, not 11" in rows[0].error


def test_expiry_leaves_a_same_named_link_even_with_the_same_alias(kernel):
    """Someone copied the alias as well: the index still tells them apart."""
    plumbing = linkutil.Plumbing(ctx=None, mark=linkutil.mark_for("req2", 2e9), kind="bridge")
    run(linkutil.create(None, plumbing, ["stb"], ["stb", "type", "bridge"]))
    del kernel.links["stb"]
    kernel.add("stb", alias=plumbing.mark)
    rows = run(plumbing.remove(at_expiry=True))
    assert "stb" in kernel.links and rows[0].action == "refused"


def test_expiry_removes_the_link_it_made(kernel):
    plumbing = linkutil.Plumbing(ctx=None, mark=linkutil.mark_for("req3", 2e9), kind="veth")
    run(linkutil.create(None, plumbing, ["st1", "st1p"], ["st1", "type", "veth", "peer", "name", "st1p"]))
    rows = run(plumbing.remove(at_expiry=True))
    assert {r.action for r in rows} == {"removed"} and not kernel.links


def test_an_unrecorded_unmarked_name_goes_only_during_setup(kernel):
    """A setup cut off between `ip link add` and recording: undone while the request runs, never at expiry."""
    plumbing = linkutil.Plumbing(ctx=None, mark=linkutil.mark_for("req4", 2e9))
    plumbing.issued.append("st2")
    kernel.add("st2")
    assert run(plumbing.remove(at_expiry=True))[0].action == "refused" and "st2" in kernel.links
    assert run(plumbing.remove())[0].action == "removed" and "st2" not in kernel.links
