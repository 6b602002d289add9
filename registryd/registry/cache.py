"""A small bounded LRU mapping for facts about immutable content (manifests by digest)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most C{maxEntries} values (and C{maxWeight} in total by C{weigh}); least recently used go first."""

    def __init__(
        self, maxEntries: int, maxWeight: int | None = None, weigh: Callable[[V], int] | None = None
    ) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._maxEntries = maxEntries
        self._maxWeight = maxWeight
        self._weigh = weigh
        self._weight = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value for key (marking it recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Remember value for key, evicting the least recently used beyond the limits."""
        weight = self._weigh(value) if self._weigh is not None else 0
        if self._maxWeight is not None and weight > self._maxWeight:
            return
        self.discard(key)
        self._entries[key] = value
        self._weight += weight
        while len(self._entries) > self._maxEntries or (
            self._maxWeight is not None and self._weight > self._maxWeight
        ):
            _, evicted = self._entries.popitem(last=False)
            if self._weigh is not None:
                self._weight -= self._weigh(evicted)

    def discard(self, key: K) -> None:
        """Forget key if present."""
        value = self._entries.pop(key, None)
        if value is not None and self._weigh is not None:
            self._weight -= self._weigh(value)
