"""The poll block codec is pure: whatever goes in comes back, within the item budget, and a
corrupt blob is an error (the repository around it: tests/integration/test_poll_layout.py)."""
from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from chalicelib.storage.blocks import (
    BlockError,
    block_id,
    block_size,
    decode_block,
    encode_block,
    pack_blocks,
)
from chalicelib.storage.polls import DAY


store_ids = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


values = st.lists(st.integers(0, 2 * DAY - 1), max_size=60).map(lambda v: sorted(set(v)))


@given(st.dictionaries(store_ids, values, max_size=30))
def test_a_block_gives_back_exactly_what_went_in(content):
    entries = sorted(content.items())
    block = decode_block(encode_block(entries))
    assert [(store, list(vals)) for store, vals in block.entries()] == entries


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.dictionaries(store_ids, values, min_size=1, max_size=40), st.integers(256, 4000))
def test_packed_blocks_fit_the_budget_and_lose_nothing(content, budget):
    entries = sorted(content.items())
    blobs = pack_blocks(entries, budget)
    assert all(len(blob) <= budget for blob in blobs)
    merged: dict[str, set[int]] = defaultdict(set)
    for blob in blobs:
        for store, vals in decode_block(blob).entries():
            merged[store].update(vals)
    assert {store: sorted(vals) for store, vals in merged.items() if vals} == \
        {store: vals for store, vals in entries if vals}
    assert set(merged) == set(content)


def test_any_store_id_is_stored_unambiguously():
    awkward = ["tab\tstore", "new\nline", "comma,store", " lead", "é-ünïcode-店", "x" * 500, "#stores"]
    entries = sorted((store, [7, 9]) for store in awkward)
    assert [(s, list(v)) for s, v in decode_block(encode_block(entries)).entries()] == entries


def test_a_corrupt_blob_is_an_error_not_garbage():
    blob = encode_block([("a", [1])])
    for bad in (b"", b"nope", blob[:-3], blob[:4] + b"\x00" * 20):
        with pytest.raises(BlockError):
            decode_block(bad)


def test_block_ids_are_content_addresses_that_know_their_size():
    blob = encode_block([("a", [1, 2])])
    assert block_id(blob) == block_id(bytes(blob))
    assert block_size(block_id(blob)) == len(blob)
    assert block_id(encode_block([("a", [1, 3])])) != block_id(blob)
