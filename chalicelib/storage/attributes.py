"""PynamoDB attributes that serialise themselves (the pattern of PynamoDB's ``JSONAttribute`` and
its ``examples/attributes.py``): a model's field holds the value callers use, and no caller has
to remember to encode or decode it."""
from __future__ import annotations

import json
import zlib
from enum import Enum
from typing import Any, Mapping, Optional, TypeVar

from pynamodb.attributes import Attribute, JSONAttribute
from pynamodb.constants import BINARY, STRING

E = TypeVar("E", bound=Enum)


class EnumAttribute(Attribute[E]):
    """An enum stored as its value (so a ``str`` enum keeps the strings already in the tables)."""

    attr_type = STRING

    def __init__(self, enum_type: type[E], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enum_type = enum_type

    def serialize(self, value: E | str) -> str:
        return str(self.enum_type(value).value)

    def deserialize(self, value: str) -> E:
        return self.enum_type(value)


class SortedJSONAttribute(JSONAttribute):
    """JSON text with sorted keys: the same value is always stored as the same text."""

    def serialize(self, value: Any) -> Optional[str]:
        return None if value is None else json.dumps(value, sort_keys=True)


def encode_map(values: Mapping[str, Any]) -> bytes:
    """Compressed JSON of a per-store map: sorted and compact, so equal maps give equal bytes
    (page items are keyed by the hash of these bytes)."""
    return zlib.compress(json.dumps(values, sort_keys=True, separators=(",", ":")).encode("utf-8"), 6)


def decode_map(blob: Optional[bytes]) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob).decode("utf-8")) if blob else {}


class CompressedJSONAttribute(Attribute[dict[str, Any]]):
    """A JSON object stored as ``encode_map``'s compressed bytes: a binary attribute, the bytes
    as they are (as ``BinaryAttribute(legacy_encoding=False)`` stores them)."""

    attr_type = BINARY

    def serialize(self, value: Mapping[str, Any]) -> bytes:
        return encode_map(value)

    def deserialize(self, value: bytes) -> dict[str, Any]:
        return decode_map(value)
