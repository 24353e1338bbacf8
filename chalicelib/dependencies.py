"""The composition root: every service, repository and client of one deployment, built once.

Settings are read from the environment once, here (``Dependencies.from_env``), and
everything else receives what it needs from this factory, as chalice's own deployer
is assembled by ``_create_deployer``: nothing AWS-bound is created at import, a
Lambda container builds this on its first invocation and reuses it, and a test or a
script builds one of its own (``from_settings`` with changed settings, or its own clients).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from chalicelib.aws import AwsClients
from chalicelib.dead_letters import DeadLetters
from chalicelib.drops import DropService
from chalicelib.reporting import ReportService
from chalicelib.settings import Settings
from chalicelib.storage.ingestions import IngestionRepository
from chalicelib.storage.models import Tables
from chalicelib.storage.owner_keys import OwnerKeyRepository


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    aws: AwsClients
    tables: Tables
    reports: ReportService
    drops: DropService
    dead_letters: DeadLetters
    owner_keys: OwnerKeyRepository

    @classmethod
    def from_settings(cls, settings: Settings, aws: Optional[AwsClients] = None) -> "Dependencies":
        """Everything on ``settings``; ``aws`` defaults to clients for the environment's endpoints."""
        aws = aws or AwsClients.from_env()
        tables = Tables.from_settings(settings)
        reports = ReportService.from_settings(settings, tables, aws)
        return cls(
            settings=settings,
            aws=aws,
            tables=tables,
            reports=reports,
            drops=DropService.from_settings(settings, tables, aws),
            dead_letters=DeadLetters(aws, reports.jobs, IngestionRepository(tables.ingestions)),
            owner_keys=OwnerKeyRepository(tables.owner_keys),
        )

    @classmethod
    def from_env(cls) -> "Dependencies":
        return cls.from_settings(Settings.from_env())
