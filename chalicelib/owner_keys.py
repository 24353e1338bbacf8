"""Who may see which stores: owner keys, report scopes and report page tokens.

An **owner key** is an API key bound to a set of store ids (``./storemon keys``). A
request sending one is that owner: its reports hold only its stores, and only it (or
the report's page token) reads them. Any other accepted request is the **fleet**
client (the stage's usage-plan key; locally ``STOREMON_API_KEY``, or nothing when it
is unset): it sees every store, and reads the reports no owner key triggered. With no
owner keys stored, every request is the fleet client, exactly as before owner keys.

Pure policy: the key lookup is a parameter (``OwnerKeyRepository`` or any object with
``by_secret``), so the rules are tested without AWS.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Protocol

from chalicelib.core.parsing import InvalidField, parse_store_id

#: Most stores one key or one report scope may name: keeps a key's item and a job's
#: item under DynamoDB's 400 KB whatever the ids' length (2,000 x 128 characters).
MAX_SCOPE_STORES = 2000


class KeyRefused(Exception):
    """The request's key is not accepted (401)."""


class ScopeError(ValueError):
    """Explicit ``store_ids`` that are malformed or outside what the key may see (400)."""


class _KeyRecord(Protocol):
    key_id: str
    store_ids: Any
    revoked: Any


class KeyLookup(Protocol):
    def by_secret(self, secret: str) -> Optional[_KeyRecord]: ...


@dataclass(frozen=True)
class Caller:
    """Who is asking: an owner key (its id and stores) or the fleet client (``FLEET``)."""

    key_id: Optional[str] = None
    stores: Optional[frozenset[str]] = None

    @property
    def is_owner(self) -> bool:
        return self.key_id is not None

    def sees(self, store_id: str) -> bool:
        return self.stores is None or store_id in self.stores


FLEET = Caller()


def new_secret() -> str:
    """A key's secret: 48 hex characters after ``smk``. API Gateway accepts it as a key
    value too (20 to 128 characters), so one secret serves both checks."""
    return "smk" + secrets.token_hex(24)


def new_page_token() -> str:
    """A report's page token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def identify(presented: str, keys: KeyLookup, fleet_key: Optional[str]) -> Caller:
    """The caller a request's ``x-api-key`` names; ``KeyRefused`` for a revoked owner key,
    or for any other key than ``fleet_key`` when one is set (the local check of the
    usage-plan key). Without owner keys this is the old check, unchanged."""
    if presented:
        record = keys.by_secret(presented)
        if record is not None:
            if record.revoked:
                raise KeyRefused("this API key was revoked; ask the operators for a new one")
            return Caller(record.key_id, frozenset(record.store_ids or ()))
    if fleet_key and not hmac.compare_digest(presented.encode(), fleet_key.encode()):
        raise KeyRefused("a valid API key is required in the x-api-key header")
    return FLEET


def may_read(caller: Caller, owner_key_id: Optional[str]) -> bool:
    """A report triggered by an owner key is that key's alone; the fleet's are the fleet's."""
    return (owner_key_id or None) == caller.key_id


def token_matches(expected: Optional[str], given: str) -> bool:
    """A report's page token, compared in constant time (no token stored: never)."""
    return bool(expected) and hmac.compare_digest(str(expected).encode(), given.encode())


def store_ids_argument(value: Any) -> Optional[list[str]]:
    """``store_ids`` as sent: a JSON list of strings, or a comma-separated string (query
    parameter; store ids never hold a comma). None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part for part in value.split(",")]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ScopeError('store_ids must be a list of store id strings, e.g. {"store_ids": ["123", "456"]}, '
                     "or a comma-separated query parameter")


def checked_store_ids(values: Iterable[str]) -> tuple[list[str], list[str]]:
    """Valid ids (stripped, deduplicated, sorted) and a reason per malformed one."""
    valid, reasons = set(), []
    for value in values:
        try:
            valid.add(parse_store_id(value))
        except InvalidField as error:
            reasons.append(str(error))
    return sorted(valid), reasons


def listed(ids: list[str], limit: int = 10) -> str:
    """Up to ``limit`` ids for an error message, each cut to 40 characters, and how many more."""
    shown = ", ".join(repr(i[:40]) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def report_scope(caller: Caller, requested: Optional[list[str]]) -> Optional[frozenset[str]]:
    """The stores a report triggered by ``caller`` holds (None: the whole fleet).
    ``ScopeError`` names malformed ids and ids outside what the caller may see."""
    if requested is None:
        return caller.stores
    valid, malformed = checked_store_ids(requested)
    if malformed:
        raise ScopeError(f"store_ids holds {len(malformed)} malformed id(s): " + "; ".join(malformed[:10]))
    if not valid:
        raise ScopeError("store_ids must name at least one store")
    if len(valid) > MAX_SCOPE_STORES:
        raise ScopeError(f"store_ids names {len(valid):,} stores; at most {MAX_SCOPE_STORES:,} per report")
    outside = [store for store in valid if not caller.sees(store)]
    if outside:
        raise ScopeError(f"store_ids names {len(outside)} store(s) this API key may not see: "
                         f"{listed(outside)}")
    return frozenset(valid)
