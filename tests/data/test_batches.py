"""Batches bounded by total size and count (tessera.data.batches), as tokenization and language id use."""

from __future__ import annotations

from tessera.data.batches import batched_by_size


def test_a_batch_closes_at_its_size_or_its_count_and_keeps_order():
    texts = ["aa", "bbb", "c", "dddd", "e", "f", "g"]
    assert list(batched_by_size(texts, 5)) == [["aa", "bbb"], ["c", "dddd"], ["e", "f", "g"]]
    assert list(batched_by_size(texts, 100, max_items=3)) == [["aa", "bbb", "c"], ["dddd", "e", "f"], ["g"]]
    assert list(batched_by_size(texts, 100, size=lambda t: 0, max_items=None)) == [texts]
    assert list(batched_by_size([], 5)) == []
