"""Per-store schedules and time zones, kept as one item per store shard.

A report part reads its shards' maps with one BatchGetItem instead of scanning
14k small items (moto's server scans ~2,200 items/s). A drop replaces the
values of the stores it names (replacement semantics) with an optimistic,
versioned read-modify-write per shard.
"""
from __future__ import annotations

import json
import zlib
from collections import defaultdict
from typing import Any, Iterable, Mapping

from pynamodb.exceptions import PutError

from chalicelib.storage.models import BusinessHoursShard, StoreMapShard, TimezoneShard
from chalicelib.storage.polls import shard_of

MAX_ATTEMPTS = 8


def _encode(values: Mapping[str, Any]) -> bytes:
    return zlib.compress(json.dumps(values, sort_keys=True, separators=(",", ":")).encode("utf-8"), 6)


def _decode(blob: bytes | None) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob).decode("utf-8")) if blob else {}


class StoreMapRepository:
    """Replace and read per-store values in a ``StoreMapShard`` table."""

    def __init__(self, model: type[StoreMapShard], shards: int) -> None:
        self.model = model
        self.shards = shards

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
                item = self.model.get(shard)
            except self.model.DoesNotExist:
                item = self.model(shard)
            merged = _decode(item.payload)
            merged.update(values)
            item.payload = _encode(merged)
            item.store_count = len(merged)
            try:
                item.save()  # conditional on the version read above
                return
            except PutError as error:
                if error.cause_response_code != "ConditionalCheckFailedException":
                    raise
        raise RuntimeError(f"{self.model.Meta.table_name}: shard {shard} kept changing under us")

    def read(self, shards: Iterable[int]) -> dict[str, Any]:
        """All stores' values in the given shards."""
        values: dict[str, Any] = {}
        for item in self.model.batch_get(sorted(set(shards))):
            values.update(_decode(item.payload))
        return values


def business_hours_repository(shards: int) -> StoreMapRepository:
    return StoreMapRepository(BusinessHoursShard, shards)


def timezone_repository(shards: int) -> StoreMapRepository:
    return StoreMapRepository(TimezoneShard, shards)
