"""Rendezvous (highest-random-weight) hashing: which K peers a node probes in the mesh.

Every (chooser, peer) pair gets a pseudo-random score; a node probes the K present peers with the highest
scores. Scores depend only on the two names, so when a peer joins, a chooser swaps at most one peer (the
newcomer displaces its lowest-ranked pick, if it ranks in the top K); when a peer leaves, only choosers that
had it pick one replacement. Everyone else's mesh stays as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(chooser: str, peer: str) -> int:
    # \0 cannot occur in node names, so ("ab", "c") and ("a", "bc") never collide.
    digest = hashlib.blake2b(f"{chooser}\0{peer}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def pick(chooser: str, peers: Iterable[str], k: int) -> list[str]:
    """The K highest-scoring peers other than the chooser itself, best first."""
    candidates = {p for p in peers if p != chooser}
    ranked = sorted(candidates, key=lambda p: (score(chooser, p), p), reverse=True)
    return ranked[: max(0, k)]
