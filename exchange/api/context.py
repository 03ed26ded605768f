"""Per-app services, bound once in `create_app` and reached from views via `services()`."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from exchange.backends import blob_store, key_provider
from exchange.clock import Clock
from exchange.crypto.keys import KeyProvider
from exchange.db import Database
from exchange.fhir.artefacts import Artefacts
from exchange.fhir.capability import CapabilityRegistry
from exchange.settings import Settings
from exchange.storage.blobs import BlobStore

EXTENSION_KEY = "exchange"


@dataclass
class Services:
    """What views need: settings, database, clock, FHIR artefacts and capabilities."""

    settings: Settings
    database: Database
    clock: Clock
    artefacts: Artefacts
    capabilities: CapabilityRegistry
    _store: BlobStore | None = field(default=None, repr=False)
    _keys: KeyProvider | None = field(default=None, repr=False)

    def blob_store(self) -> BlobStore:
        """The configured document store (made on first use)."""
        if self._store is None:
            self._store = blob_store(self.settings)
        return self._store

    def key_provider(self) -> KeyProvider:
        """The configured key provider (made on first use, so a missing keyring is a 503
        on the requests that need it, not a crash at start-up)."""
        if self._keys is None:
            self._keys = key_provider(self.settings)
        return self._keys


def services() -> Services:
    """The services of the current app."""
    bound: Services = current_app.extensions[EXTENSION_KEY]
    return bound
