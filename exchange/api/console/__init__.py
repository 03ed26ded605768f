"""The console (`operations.md`, "The console"): server-rendered pages for IG leads, DCOs
and administrators in the NHS.UK design system, a second front door over the same use
cases as the API. Views parse a form, call one use case and render; no SQL, no rule.

`init_app` sets up Jinja (autoescape on for every template, the `nhsuk-frontend-jinja`
macros, which need `ChainableUndefined`), registers the blueprint and its error handlers,
and warns once if the NHS.UK assets were never built (the console then works unstyled).
"""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2
from flask import Flask

# Each page module adds its views to the blueprint.
from exchange.api.console import (  # noqa: F401
    access_log,
    agreements,
    child,
    dashboard,
    formatting,
    integrity,
    login,
    registry,
    reviews,
    worklist,
)
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import assets_built

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


def init_app(app: Flask) -> None:
    """Register the console on `app`."""
    app.jinja_options = {
        **app.jinja_options,
        # Flask autoescapes only .html/.htm/.xml/.svg; these templates are .jinja.
        "autoescape": True,
        # The nhsuk-frontend-jinja macros read optional parameters through undefined ones.
        "undefined": jinja2.ChainableUndefined,
        "loader": jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(TEMPLATES), jinja2.PackageLoader("nhsuk_frontend_jinja")]
        ),
    }
    app.register_blueprint(bp)
    formatting.init_app(app)
    if not assets_built():
        log.warning(
            "the console's NHS.UK assets are not built (run `make assets`): "
            "the console works, unstyled"
        )
