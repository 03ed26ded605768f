"""Per-app services, bound once in `create_app` and reached from views via `services()`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from exchange.clock import Clock
from exchange.db import Database
from exchange.fhir.artefacts import Artefacts
from exchange.fhir.capability import CapabilityRegistry
from exchange.settings import Settings

EXTENSION_KEY = "exchange"


@dataclass
class Services:
    """What views need: settings, database, clock, FHIR artefacts and capabilities."""

    settings: Settings
    database: Database
    clock: Clock
    artefacts: Artefacts
    capabilities: CapabilityRegistry


def services() -> Services:
    """The services of the current app."""
    bound: Services = current_app.extensions[EXTENSION_KEY]
    return bound
