"""Rendezvous hashing for the mesh: bounded, stable as nodes come and go, spread evenly."""

from __future__ import annotations

import collections

from steth.agent.rendezvous import pick, score

NODES = [f"compute-{i}" for i in range(1, 61)] + [f"network-{i}" for i in range(1, 5)]


def test_picks_k_peers_never_itself():
    for node in NODES:
        chosen = pick(node, NODES, 5)
        assert len(chosen) == 5 and len(set(chosen)) == 5
        assert node not in chosen
    assert pick("compute-1", ["compute-1", "compute-2"], 8) == ["compute-2"]  # fewer peers than K: all of them
    assert pick("compute-1", [], 3) == []


def test_deterministic_and_order_free():
    assert pick("compute-7", NODES, 6) == pick("compute-7", list(reversed(NODES)), 6)
    assert score("a", "b") == score("a", "b") and score("a", "b") != score("b", "a")
    assert score("ab", "c") != score("a", "bc")


def test_a_join_changes_at_most_one_peer_per_chooser():
    newcomer = "compute-99"
    changed = 0
    for node in NODES:
        before, after = set(pick(node, NODES, 5)), set(pick(node, NODES + [newcomer], 5))
        diff = after - before
        assert diff <= {newcomer}  # only the newcomer can come in...
        assert len(before - after) == len(diff) <= 1  # ...displacing exactly one peer
        changed += bool(diff)
    # Each chooser takes the newcomer with probability K/N: about 5 of 64 here, never most of them.
    assert 1 <= changed <= 20


def test_a_departure_only_affects_choosers_that_had_it():
    gone = "compute-13"
    rest = [n for n in NODES if n != gone]
    for node in rest:
        before, after = pick(node, NODES, 5), pick(node, rest, 5)
        if gone in before:
            assert set(before) - {gone} < set(after) and len(after) == 5  # one replacement
        else:
            assert before == after


def test_in_degree_is_spread():
    """Every node is pinged by someone, and nobody by a crowd (K=5 over 64 nodes: mean 5)."""
    indegree = collections.Counter(p for node in NODES for p in pick(node, NODES, 5))
    assert set(indegree) == set(NODES)
    assert max(indegree.values()) <= 14
