"""RFC 6962 Merkle trees built from leaf hashes: roots at any size in one pass, and inclusion proofs.

Verification lives in `proof.py`, which auditors run without soctriage; this module only builds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from soctriage.service.store.proof import node_hash


class Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest first.

    Appending a leaf costs O(1) amortised and the root of the tree so far O(log n), so the roots of every
    checkpoint of a log come from one pass over its leaves.
    """

    def __init__(self) -> None:
        self.size = 0
        self._subtrees: list[tuple[int, bytes]] = []  # (leaf count, root), counts strictly decreasing

    def append(self, leaf: bytes) -> None:
        self.size += 1
        count, digest = 1, leaf
        while self._subtrees and self._subtrees[-1][0] == count:
            left_count, left = self._subtrees.pop()
            count, digest = left_count + count, node_hash(left, digest)
        self._subtrees.append((count, digest))

    def root(self) -> bytes:
        """MTH of the leaves so far: RFC 6962 splits off the largest power of two on the left, so the root
        folds the subtrees together from the right."""
        if not self._subtrees:
            return EMPTY_ROOT
        digest = self._subtrees[-1][1]
        for _, left in reversed(self._subtrees[:-1]):
            digest = node_hash(left, digest)
        return digest


# RFC 6962: the hash of an empty tree is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def roots_at(leaves: Iterable[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """The root of the first n leaves for each n in `sizes` that the leaves reach."""
    wanted = sorted(set(sizes))
    found: dict[int, bytes] = {}
    frontier = Frontier()
    position = 0
    if wanted and wanted[0] == 0:
        found[0] = EMPTY_ROOT
        position = 1
    for leaf in leaves:
        if position == len(wanted):
            break
        frontier.append(leaf)
        if frontier.size == wanted[position]:
            found[frontier.size] = frontier.root()
            position += 1
    return found


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of all `leaves` (RFC 6962 PATH), bottom up.

    Built level by level: a node without a right sibling is carried up unchanged, which yields exactly the
    RFC 6962 tree, and contributes nothing to the path at that level.
    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)}")
    path: list[bytes] = []
    level = list(leaves)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = [
            node_hash(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        index //= 2
    return path
