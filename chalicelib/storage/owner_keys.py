"""Owner keys: API keys bound to a set of store ids, stored by the SHA-256 of the secret.

The table is small (one item per key, a few per owner) and read by exact key on
each request that sends ``x-api-key``; only ``keys list``/``revoke`` scan it.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Iterable, Optional

from pynamodb.exceptions import PutError, UpdateError

from chalicelib.storage.models import OwnerKey, Tables

#: Characters of the hash that name a key in ``keys list`` and the report jobs (48 bits:
#: a name, not a secret; creation refuses the rare collision).
KEY_ID_LENGTH = 12


def key_hash(secret: str) -> str:
    """What the table stores of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyExists(Exception):
    """A key with the same hash (or id) is already stored."""


class OwnerKeyRepository:
    """Owner keys in ``model``'s table (``Tables.owner_keys``)."""

    def __init__(self, model: Optional[type[OwnerKey]] = None) -> None:
        """``model``: by default the environment's table (scripts and tests; the composition
        root always passes it)."""
        self.model = model or Tables.from_env().owner_keys

    def add(self, secret: str, owner: str, store_ids: Iterable[str],
            gateway_key_id: Optional[str] = None) -> OwnerKey:
        digest = key_hash(secret)
        if self.find(digest[:KEY_ID_LENGTH]):
            raise KeyExists(f"a key with id {digest[:KEY_ID_LENGTH]} exists")
        record = self.model(digest, key_id=digest[:KEY_ID_LENGTH], owner=owner, store_ids=set(store_ids),
                            created_at=datetime.now(timezone.utc), revoked=False,
                            gateway_key_id=gateway_key_id)
        try:
            record.save(condition=self.model.key_hash.does_not_exist())
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise KeyExists(f"a key with id {record.key_id} exists") from None
            raise
        return record

    def by_secret(self, secret: str) -> Optional[OwnerKey]:
        """The key whose secret this is (revoked or not), or None."""
        try:
            return self.model.get(key_hash(secret), consistent_read=True)
        except self.model.DoesNotExist:
            return None

    def all(self) -> list[OwnerKey]:
        """Every key, oldest first (a scan: for the CLI, never on a request)."""
        return sorted(self.model.scan(consistent_read=True), key=lambda key: key.created_at)

    def find(self, prefix: str) -> list[OwnerKey]:
        """The keys whose id starts with ``prefix``."""
        return [key for key in self.all() if key.key_id.startswith(prefix)]

    def revoke(self, record: OwnerKey) -> bool:
        """Mark a key revoked; False when it already was."""
        try:
            record.update(actions=[self.model.revoked.set(True),
                                   self.model.revoked_at.set(datetime.now(timezone.utc))],
                          condition=self.model.revoked == False)  # noqa: E712 (a DynamoDB condition)
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
