"""Cutting a stream into batches bounded by total size (and optionally by count), for the steps that work
on many texts at once (tokenization, language id)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["batched_by_size"]

T = TypeVar("T")


def batched_by_size(items: Iterable[T], max_size: int, size: Callable[[T], int] = len,
            max_items: int | None = None) -> Iterator[list[T]]:
    """Consecutive lists of `items`, each closed once its sizes sum to `max_size` or it holds `max_items`."""
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += size(item)
        if total >= max_size or (max_items is not None and len(batch) >= max_items):
            yield batch
            batch, total = [], 0
    if batch:
        yield batch
