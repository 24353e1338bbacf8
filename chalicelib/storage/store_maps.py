"""Per-store schedules and time zones, kept as one head item per store shard.

A report part reads its shards' maps with one BatchGetItem instead of scanning
14k small items (moto's server scans ~2,200 items/s). A drop replaces the
values of the stores it names (replacement semantics) with an optimistic,
versioned read-modify-write per shard.

No item outgrows the budget: a shard's map that does not fit its head item is
split by store into content-addressed page items the head lists (a fleet of
140k stores has ~8,800 schedules a shard, ~300 KB compressed). Pages replaced
by a write are deleted after the head moves on; a reader that meets a page gone
meanwhile reads the head again.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Iterable, Mapping, Optional, Sequence

from pynamodb.exceptions import PutError

from chalicelib.storage.attributes import encode_map
from chalicelib.storage.models import StoreMapShard, Tables
from chalicelib.storage.layout import DEFAULT_ITEM_BUDGET, shard_of

MAX_ATTEMPTS = 8
#: Page items take numeric keys from here on (shard heads are 0 .. shards - 1).
PAGE_KEY_BASE = 1_000_000_000
_PAGE_KEY_SPACE = 2 ** 48
#: The head's own attributes besides the payload (key, version, counts, page keys).
_HEAD_OVERHEAD = 512


def _page_key(page: Mapping[str, Any]) -> int:
    """Content-addressed: the hash of the page's stored bytes."""
    digest = int.from_bytes(hashlib.blake2b(encode_map(page), digest_size=8).digest(), "big")
    return PAGE_KEY_BASE + digest % _PAGE_KEY_SPACE


def split_map(values: Mapping[str, Any], budget: int) -> list[dict[str, Any]]:
    """``values`` split by store id into maps each stored in at most ``budget`` bytes
    (``StoreMapShard.payload`` stores a map as compressed JSON)."""
    stores = sorted(values)
    page = {store: values[store] for store in stores}
    if len(encode_map(page)) <= budget:
        return [page]
    if len(stores) < 2:
        raise ValueError(f"the value of store {stores[0][:40]!r} alone is over {budget} bytes compressed")
    half = len(stores) // 2
    return (split_map({s: values[s] for s in stores[:half]}, budget)
            + split_map({s: values[s] for s in stores[half:]}, budget))


class StoreMapRepository:
    """Replace and read per-store values in a ``StoreMapShard`` table."""

    def __init__(self, model: type[StoreMapShard], shards: int,
                 item_budget: int = DEFAULT_ITEM_BUDGET) -> None:
        self.model = model
        self.shards = shards
        self.item_budget = item_budget

    def replace(self, values: Mapping[str, Any]) -> int:
        """Set each named store's value, leaving other stores alone; returns shards written."""
        by_shard: dict[int, dict[str, Any]] = defaultdict(dict)
        for store_id, value in values.items():
            by_shard[shard_of(store_id, self.shards)][store_id] = value
        for shard, shard_values in sorted(by_shard.items()):
            self._replace_in_shard(shard, shard_values)
        return len(by_shard)

    def _replace_in_shard(self, shard: int, values: Mapping[str, Any]) -> None:
        for _ in range(MAX_ATTEMPTS):
            try:
                item = self.model.get(shard, consistent_read=True)
            except self.model.DoesNotExist:
                item = self.model(shard)
            merged = self._read_heads([item])
            if merged is None:
                continue  # a page went away under us: another writer moved on; read again
            merged.update(values)
            old_pages = set(item.pages or ())
            pages = split_map(merged, self.item_budget - _HEAD_OVERHEAD)
            if len(pages) == 1:
                item.payload, item.pages = pages[0], None
            else:
                keys = []
                for page in pages:
                    key = _page_key(page)
                    self.model(key, payload=page, store_count=0).save(add_version_condition=False)
                    keys.append(key)
                item.payload, item.pages = None, set(keys)
            item.store_count = len(merged)
            try:
                item.save()  # conditional on the version read above
            except PutError as error:
                if error.cause_response_code != "ConditionalCheckFailedException":
                    raise
                continue
            for stale in old_pages - set(item.pages or ()):
                self.model(stale).delete(add_version_condition=False)
            return
        raise RuntimeError(f"{self._table}: shard {shard} kept changing under us")

    def _read_heads(self, heads: Sequence[StoreMapShard]) -> Optional[dict[str, Any]]:
        """The values of these head items, pages included; None if a listed page is gone."""
        values: dict[str, Any] = {}
        page_keys: set[int] = set()
        for head in heads:
            values.update(head.payload or {})
            page_keys.update(int(key) for key in head.pages or ())
        if page_keys:
            pages = list(self.model.batch_get(sorted(page_keys)))
            if len(pages) != len(page_keys):
                return None
            for page in pages:
                values.update(page.payload or {})
        return values

    def read(self, shards: Iterable[int]) -> dict[str, Any]:
        """All stores' values in the given shards."""
        wanted = sorted(set(shards))
        for attempt in range(MAX_ATTEMPTS):
            heads = list(self.model.batch_get(wanted, consistent_read=attempt > 0))
            values = self._read_heads(heads)
            if values is not None:
                return values
        raise RuntimeError(f"{self._table}: pages kept changing under a read")

    @property
    def _table(self) -> str:
        return str(getattr(self.model.Meta, "table_name", self.model.__name__))


def business_hours_repository(shards: int, item_budget: int = DEFAULT_ITEM_BUDGET,
                              tables: Optional[Tables] = None) -> StoreMapRepository:
    """Schedules by store; ``tables`` default to the environment's (scripts and tests)."""
    return StoreMapRepository((tables or Tables.from_env()).business_hours, shards, item_budget)


def timezone_repository(shards: int, item_budget: int = DEFAULT_ITEM_BUDGET,
                        tables: Optional[Tables] = None) -> StoreMapRepository:
    """Time zones by store; ``tables`` default to the environment's (scripts and tests)."""
    return StoreMapRepository((tables or Tables.from_env()).timezones, shards, item_budget)
