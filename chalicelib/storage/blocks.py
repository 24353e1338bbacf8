"""The binary block: a compressed, self-describing set of stores and their sorted values.

Every poll item and roster item holds one block. Pure (no AWS), so it is tested alone.

Layout, before zlib (all integers little-endian)::

    MAGIC | n: u32 | id lengths: n x u16 | ids: UTF-8, concatenated | counts: n x u32
          | values: sum(counts) x u32

Why this shape:
- **Unambiguous for any store id**: ids are length-prefixed, never split on a
  separator, so no character in an id can corrupt the block (a TAB once did).
- **Each store once per block**, then plain integers: decoding is a few C-level
  array copies, not a text parse per poll.
- **Bounded by construction**: ``pack_blocks`` splits entries (by store, and a
  single huge store by value range) until every block fits a byte budget, so no
  write can ever exceed DynamoDB's item limit whatever the fleet, poll rate or
  id format.

A poll value is ``offset * 2 + active`` with ``offset`` the seconds since the
block's UTC day start, so sorting values sorts polls by (instant, status).
Roster blocks carry stores with no values.
"""
from __future__ import annotations

import hashlib
import operator
import sys
import zlib
from array import array
from dataclasses import dataclass
from itertools import accumulate, chain, pairwise
from typing import Iterable, Iterator, Sequence

MAGIC = b"SMB1"
#: zlib's worst case grows incompressible data by a few bytes per 16 KB block plus a header.
_ZLIB_SLACK = 64
_HEADER = 4 + 4
MAX_STORE_ID_BYTES = 65_535
_LITTLE = sys.byteorder == "little"

Entry = tuple[str, Sequence[int]]  # (store id, sorted unique values)


class BlockError(ValueError):
    """A blob that is not a valid block (corrupt, truncated or of another format)."""


def _raw_array(typecode: str, values: Iterable[int]) -> bytes:
    data = array(typecode, values)
    if not _LITTLE:
        data.byteswap()
    return data.tobytes()


def _read_array(typecode: str, raw: memoryview) -> array:
    data = array(typecode)
    data.frombytes(raw)
    if not _LITTLE:
        data.byteswap()
    return data


def raw_size(entries: Sequence[Entry]) -> int:
    """Bytes of the block before compression: an upper bound of its stored size."""
    return _HEADER + sum(6 + len(store.encode("utf-8")) + 4 * len(values) for store, values in entries)


def encode_block(entries: Sequence[Entry]) -> bytes:
    """``entries`` sorted by store id, each with sorted unique values -> deterministic bytes."""
    ids = [store.encode("utf-8") for store, _ in entries]
    if any(len(raw) > MAX_STORE_ID_BYTES for raw in ids):
        raise ValueError(f"a store id is longer than {MAX_STORE_ID_BYTES} bytes")
    payload = b"".join((
        _raw_array("I", [len(entries)]),
        _raw_array("H", [len(raw) for raw in ids]),
        b"".join(ids),
        _raw_array("I", [len(values) for _, values in entries]),
        _raw_array("I", chain.from_iterable(values for _, values in entries)),  # C-level, not per value
    ))
    return MAGIC + zlib.compress(payload, 6)


@dataclass(frozen=True)
class Block:
    """A decoded block: ``stores[i]`` owns ``values[offsets[i]:offsets[i + 1]]``."""

    stores: list[str]
    offsets: list[int]
    values: array

    def entries(self) -> Iterator[tuple[str, array]]:
        for index, store in enumerate(self.stores):
            yield store, self.values[self.offsets[index]:self.offsets[index + 1]]


def _store_ids(payload: memoryview, at: int, lengths: Sequence[int]) -> list[str]:
    """The ids region decoded at once and cut by the lengths (a block's ids are nearly always
    ASCII, where bytes and characters coincide); one decode per id otherwise."""
    total = sum(lengths)
    text = bytes(payload[at:at + total]).decode("utf-8")
    if len(text) == total:
        ends = list(accumulate(lengths))
        return [text[end - length:end] for length, end in zip(lengths, ends, strict=True)]
    stores = []
    for length in lengths:
        stores.append(bytes(payload[at:at + length]).decode("utf-8"))
        at += length
    return stores


def decode_block(blob: bytes) -> Block:
    """Inverse of ``encode_block``; raises ``BlockError`` for anything else."""
    if not blob.startswith(MAGIC):
        raise BlockError("not a storemon block (bad magic)")
    try:
        payload = memoryview(zlib.decompress(blob[len(MAGIC):]))
        count = _read_array("I", payload[:4])[0]
        at = 4
        lengths = _read_array("H", payload[at:at + 2 * count])
        at += 2 * count
        stores = _store_ids(payload, at, lengths)
        at += sum(lengths)
        counts = _read_array("I", payload[at:at + 4 * count])
        at += 4 * count
        values = _read_array("I", payload[at:])
    except (zlib.error, UnicodeDecodeError, IndexError, ValueError) as error:
        raise BlockError(f"corrupt block: {error}") from error
    if len(lengths) != count or len(counts) != count or len(values) != sum(counts):
        raise BlockError("corrupt block: sizes do not add up")
    offsets = [0]
    for number in counts:
        offsets.append(offsets[-1] + number)
    return Block(stores, offsets, values)


def merge_blocks(blocks: Iterable[Block]) -> list[Entry]:
    """The union of several blocks' stores and values, as sorted entries for ``pack_blocks``.

    A store found in one block keeps that block's slice (already sorted and unique) without a
    set and a sort: nearly every store of a bulk file's flush, where the union was most of its CPU."""
    pieces: dict[str, list[Sequence[int]]] = {}
    for block in blocks:
        for store, values in block.entries():
            found = pieces.get(store)
            if found is None:
                pieces[store] = [values]
            else:
                found.append(values)
    return [(store, found[0] if len(found) == 1 else sorted(set().union(*found)))
            for store, found in sorted(pieces.items(), key=operator.itemgetter(0))]


def union_block(blocks: Sequence[Block]) -> Block:
    """Several decoded blocks of one day as one block (a reader's view: its stores' values are
    the sorted union of theirs, what ``merge_blocks`` gives, at array speed). Hourly segments hold
    disjoint hours, so a store's values are mostly the concatenation of its slices in the
    blocks' time order: checked once per block set, else per store, else a set union."""
    if len(blocks) == 1:
        return blocks[0]
    ranges = sorted((min(block.values), max(block.values), index)
                    for index, block in enumerate(blocks) if block.values)
    ordered = [blocks[index] for _, _, index in ranges] + [block for block in blocks if not block.values]
    disjoint = all(low > high for (_, high, _), (low, _, _) in pairwise(ranges))
    slices: dict[str, list[array]] = {}
    for block in ordered:
        values, offsets = block.values, block.offsets
        for index, store in enumerate(block.stores):
            parts = slices.get(store)
            if parts is None:
                parts = slices[store] = []
            if offsets[index] < offsets[index + 1]:
                parts.append(values[offsets[index]:offsets[index + 1]])
    stores = sorted(slices)
    merged, offsets = array(blocks[0].values.typecode), [0]
    for store in stores:
        parts = slices[store]
        if len(parts) == 1 or disjoint or all(a[-1] < b[0] for a, b in pairwise(parts)):
            for part in parts:
                merged += part
        else:
            merged.extend(sorted(set().union(*parts)))
        offsets.append(len(merged))
    return Block(stores, offsets, merged)


def block_id(blob: bytes) -> str:
    """Content address plus size: the same block always gets the same key (a replay overwrites
    itself), and a directory knows its blocks' sizes from their names alone."""
    return f"{hashlib.blake2b(blob, digest_size=10).hexdigest()}-{len(blob):x}"


def block_size(content_id: str) -> int:
    return int(content_id.rsplit("-", 1)[1], 16)


def pack_blocks(entries: Sequence[Entry], budget: int) -> list[bytes]:
    """Encode ``entries`` into as few blocks as fit, each at most ``budget`` bytes.

    Splits by store and, for a store whose values alone overflow, by value
    range (a reader merges a store's values across blocks anyway).
    """
    if budget < 256:
        raise ValueError("a block budget below 256 bytes cannot hold a store")
    if not entries:
        return []
    if raw_size(entries) + len(MAGIC) + _ZLIB_SLACK <= budget:
        return [encode_block(entries)]  # cannot exceed the budget even uncompressed
    blob = encode_block(entries)
    if len(blob) <= budget:
        return [blob]
    if len(entries) == 1:
        store, values = entries[0]
        if len(values) < 2:
            raise ValueError(f"store id {store[:40]!r}... alone does not fit a {budget}-byte block")
        half = len(values) // 2
        return pack_blocks([(store, values[:half])], budget) + pack_blocks([(store, values[half:])], budget)
    # Split where half the raw bytes lie, so both halves shrink.
    target, running, cut = raw_size(entries) / 2, 0, 1
    for index, (store, values) in enumerate(entries):
        running += 6 + len(store) + 4 * len(values)
        if running >= target:
            cut = max(1, min(index + 1, len(entries) - 1))
            break
    return pack_blocks(entries[:cut], budget) + pack_blocks(entries[cut:], budget)
