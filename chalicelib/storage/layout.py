"""How the tables are cut: which shard a store belongs to, how big one item may be.

Both poll storage (``polls.py``) and the per-store maps (``store_maps.py``) shard by
``shard_of``, so a report part reads one shard's polls, schedules and zones alike.
"""
from __future__ import annotations

import zlib

#: Default bytes per item payload: under half of DynamoDB's 400 KB item limit, with room for the key.
DEFAULT_ITEM_BUDGET = 180_000


def shard_of(store_id: str, shards: int) -> int:
    """Stable across processes and Python versions (unlike ``hash``)."""
    return zlib.crc32(store_id.encode("utf-8")) % shards
