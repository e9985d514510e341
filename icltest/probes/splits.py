"""Select / test splits of task items: choose heads on one set, judge claims on the other.

A head set found by ablating every head on some items and then judged on the same items is
circular: the claim re-measures the selection. Every shipped or user task item therefore belongs to
one of two splits, decided by a hash of the item's own text (a pair's input, a book item's
question), so the assignment

* is the same on every machine and in every version (no random state, no file order);
* never moves an item when another is added, removed or edited (unlike "first half of a sorted
  list"); and
* lines up across files that share a text: a counterfactual item and the closed-book item with the
  same question are in the same split.

The sides come out near 50/50 but not exactly (a coin flip per item); the counts are recorded in
every result. Claims judge on ``test`` by default; ``icltest scan --ablate`` selects on ``select``;
mean / resample references for task metrics come from the split the run does not judge.
"""
from __future__ import annotations

import hashlib
import random
from typing import Sequence

SPLITS: tuple[str, ...] = ("select", "test")
ALL = "all"  # every item (measurement scripts and Hypothesis strategies; not a spec value)
_SALT = "icltest split\n"


def split_of(key: str) -> str:
    """The split of one item, from the low bit of the first byte of sha256(salt + key)."""
    digest = hashlib.sha256((_SALT + key).encode("utf-8")).digest()
    return "test" if digest[0] & 1 else "select"


def other_split(split: str) -> str:
    """The split a run does not judge, where its references come from."""
    check_split(split)
    if split == ALL:
        raise ValueError("split 'all' has no other split: every item is already used")
    return "select" if split == "test" else "test"


def check_split(split: str) -> str:
    if split not in SPLITS + (ALL,):
        raise ValueError(f"split must be one of {', '.join(SPLITS + (ALL,))}, got {split!r}")
    return split


def split_indices(keys: Sequence[str], split: str) -> list[int]:
    """Indices of the items (by their keys, in file order) that belong to ``split``."""
    check_split(split)
    return [i for i, key in enumerate(keys) if split == ALL or split_of(key) == split]


def derangement(k: int, rng: random.Random) -> list[int]:
    """A uniformly random permutation of range(k) with no fixed point (k >= 2), by rejection.

    Used for shuffled-label baselines: demonstration i shows the output of demonstration perm[i],
    never its own. About e draws on average.
    """
    if k < 2:
        raise ValueError(f"a derangement needs at least 2 elements, got {k}")
    order = list(range(k))
    while True:
        rng.shuffle(order)
        if all(i != j for i, j in enumerate(order)):
            return list(order)
