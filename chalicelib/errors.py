"""Errors a client is told about, by kind: the services raise them, ``app.py`` maps each kind
to its HTTP status in one place and answers the API's JSON error shape
(``{"error": message, "status_code": status, **details}``)."""
from __future__ import annotations

from typing import Any


class RequestError(Exception):
    """An answer for the client, not a fault: ``message`` is safe to show, ``details`` are extra
    JSON fields (``error_code``, ``report_id``)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(RequestError, ValueError):
    """A parameter the client can fix (400)."""


class NotFound(RequestError):
    """No such report or store (404)."""


class Conflict(RequestError):
    """The thing exists but is not in a state to answer that (409)."""


class Gone(RequestError):
    """It existed and was removed (410)."""


class Unavailable(RequestError):
    """A dependency failed; trying again later may work (503)."""
