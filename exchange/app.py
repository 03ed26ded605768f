"""The application factory."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from exchange.api import console, errors, health, limits, middleware, oauth, openapi
from exchange.api.context import EXTENSION_KEY, Services
from exchange.api.fhir import bp as fhir_bp
from exchange.api.fhir.auditevent import AUDIT_EVENT
from exchange.api.fhir.bearer import CLIENT_RATE
from exchange.api.fhir.binary import BINARY
from exchange.api.fhir.conformance import CONFORMANCE
from exchange.api.fhir.consent import CONSENT
from exchange.api.fhir.document import DOCUMENT_REFERENCE
from exchange.api.fhir.patient import PATIENT
from exchange.api.fhir.registry import CONTRACT, ORGANIZATION
from exchange.api.fhir.task import TASK
from exchange.api.ratelimit import RateLimiter
from exchange.clock import Clock, SystemClock
from exchange.db import Database
from exchange.fhir.artefacts import Artefacts
from exchange.fhir.capability import CapabilityRegistry
from exchange.fhir.validation import load_models
from exchange.logs import configure_logging
from exchange.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
) -> Flask:
    """Build the service: settings, database, FHIR registry, blueprints, error handlers.

    Tests pass their own `settings`, `clock` and `database`; production passes nothing and
    gets `Settings.from_env()` and the system clock.
    """
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    load_models()
    app = Flask(__name__, static_folder=None)
    # Flask's own size limit is a backstop; FHIR bodies and Binary streams have their own.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["JSON_SORT_KEYS"] = False

    capabilities = CapabilityRegistry()
    capabilities.add(ORGANIZATION)
    capabilities.add(CONTRACT)
    capabilities.add(AUDIT_EVENT)
    capabilities.add(PATIENT)
    capabilities.add(CONSENT)
    capabilities.add(TASK)
    capabilities.add(BINARY)
    capabilities.add(DOCUMENT_REFERENCE)
    for artefact_type in CONFORMANCE:
        capabilities.add(artefact_type)
    clock = clock or SystemClock()
    database = database or Database(settings.database_url)
    app.extensions[EXTENSION_KEY] = Services(
        settings=settings,
        database=database,
        clock=clock,
        artefacts=Artefacts.load(),
        capabilities=capabilities,
    )

    app.extensions[CLIENT_RATE] = RateLimiter(settings.rate_limit, clock)
    middleware.init_app(app)
    limits.init_app(app)
    errors.init_app(app)
    oauth.init_app(app, RateLimiter(settings.token_rate_limit, clock))
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(fhir_bp)
    console.init_app(app)
    app.wsgi_app = middleware.HoldingLookups(app.wsgi_app, database)  # type: ignore[method-assign]
    if settings.proxy_hops:
        # Behind N trusted proxies, take the client address and scheme from their headers
        # (for the audit trail, rate limits and HSTS); never from an untrusted client.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.proxy_hops,
            x_proto=settings.proxy_hops,
            x_host=settings.proxy_hops,
        )
    return app
