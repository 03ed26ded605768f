"""What every command needs, created lazily so `--help` works without configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import click

from exchange import migrate
from exchange.clock import Clock, SystemClock
from exchange.db import Database
from exchange.logs import configure_logging
from exchange.settings import Settings

F = TypeVar("F")


@dataclass
class CliContext:
    """Settings, clock and database for one command run."""

    debug: bool = False
    clock: Clock = field(default_factory=SystemClock)
    _database: Database | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        """The settings from the environment (an invalid one ends the command)."""
        settings = Settings.from_env()
        configure_logging("DEBUG" if self.debug else "WARNING", "text")
        return settings

    def database(self) -> Database:
        """The database, which must have been migrated to the current schema (one per
        command, its connections closed when the command ends)."""
        if self._database is None:
            self._database = self._migrated_database()
            click.get_current_context().call_on_close(self._database.dispose)
        return self._database

    def _migrated_database(self) -> Database:
        url = self.settings.database_url
        if self.settings.is_sqlite and not Path(url.removeprefix("sqlite:///")).exists():
            raise NotInitialisedError(
                "the database is not initialised or not up to date: run `exchange init`"
            )
        revision = migrate.current_revision(url)
        if revision != migrate.head_revision():
            raise NotInitialisedError(
                "the database is not initialised or not up to date: run `exchange init`"
            )
        return Database(url)


class NotInitialisedError(RuntimeError):
    """The database was never migrated, or is behind the code."""


pass_context = click.make_pass_decorator(CliContext)
