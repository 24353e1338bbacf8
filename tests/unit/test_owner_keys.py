"""Owner-scoped API keys, the policy alone (no AWS): who a presented key is, what a report of
theirs may hold, and who may read it (through the API: tests/integration/test_owner_keys.py)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import pytest

from chalicelib.owner_keys import (
    FLEET,
    Caller,
    KeyRefused,
    ScopeError,
    identify,
    may_read,
    report_scope,
    store_ids_argument,
    token_matches,
)


class _Keys:
    def __init__(self, **records: SimpleNamespace) -> None:
        self.records = records

    def by_secret(self, secret: str) -> Optional[SimpleNamespace]:
        return self.records.get(secret)


def test_identify_owner_fleet_and_refusals():
    keys = _Keys(a=SimpleNamespace(key_id="aaa", store_ids={"1", "2"}, revoked=False),
                 r=SimpleNamespace(key_id="rrr", store_ids={"1"}, revoked=True))
    assert identify("a", keys, None) == Caller("aaa", frozenset({"1", "2"}))
    assert identify("a", keys, "fleet-secret") == Caller("aaa", frozenset({"1", "2"}))  # beside the local key
    assert identify("", keys, None) == FLEET  # as before: no key, no check
    assert identify("unknown", keys, None) == FLEET
    assert identify("fleet-secret", keys, "fleet-secret") == FLEET
    for presented, fleet in (("r", None), ("r", "fleet"), ("", "fleet"), ("wrong", "fleet")):
        with pytest.raises(KeyRefused):
            identify(presented, keys, fleet)


def test_scope_and_reading_rules():
    owner = Caller("aaa", frozenset({"1", "2"}))
    assert report_scope(owner, None) == {"1", "2"} and report_scope(FLEET, None) is None
    assert report_scope(owner, ["2", " 2 "]) == {"2"} and report_scope(FLEET, ["9"]) == {"9"}
    with pytest.raises(ScopeError, match=r"may not see: '3'"):
        report_scope(owner, ["1", "3"])
    with pytest.raises(ScopeError, match="malformed.*separator"):
        report_scope(FLEET, ['a"b'])
    with pytest.raises(ScopeError, match="at least one"):
        report_scope(FLEET, [])
    assert store_ids_argument("1,2") == ["1", "2"] and store_ids_argument(None) is None
    with pytest.raises(ScopeError):
        store_ids_argument([1, 2])
    assert may_read(owner, "aaa") and not may_read(owner, None) and not may_read(owner, "bbb")
    assert may_read(FLEET, None) and not may_read(FLEET, "aaa")
    assert token_matches("t" * 43, "t" * 43) and not token_matches("t" * 43, "u" * 43)
    assert not token_matches(None, "") and not token_matches("", "")
