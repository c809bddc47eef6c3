"""Deterministic, aligned split assignment (tessera.data.split)."""

from __future__ import annotations

from collections import Counter

from tessera.data.config import SplitConfig
from tessera.data.split import assign_split, split_key


def test_unit_key_decides_the_split_whatever_the_document():
    cfg = SplitConfig(validation=0.2, test=0.2)
    for chapter in range(50):
        unit = f"bible/1-{chapter}"
        keys = [split_key(f"bible_{lang}/1-{chapter}", unit) for lang in ("ita", "eng")]
        splits = {assign_split(key, 7, cfg) for key in keys}
        assert len(splits) == 1


def test_fractions_and_determinism():
    cfg = SplitConfig(validation=0.1, test=0.05)
    keys = [split_key(f"src/{i}", None) for i in range(4000)]
    first = [assign_split(k, 1234, cfg) for k in keys]
    assert first == [assign_split(k, 1234, cfg) for k in keys]
    counts = Counter(first)
    assert abs(counts["validation"] / 4000 - 0.1) < 0.02
    assert abs(counts["test"] / 4000 - 0.05) < 0.015
    # Another seed reshuffles.
    assert first != [assign_split(k, 99, cfg) for k in keys]
