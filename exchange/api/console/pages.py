"""Rendering console pages: the common context (navigation, CSRF token, whether the
NHS.UK assets were built), form errors in the shape the error summary wants, and the HTML
error page (the console's one error shape)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from flask import Response, g, make_response, render_template, request, url_for

from exchange.api.console import security

STATIC: Final = Path(__file__).parent / "static"
#: The compiled NHS.UK frontend, copied here by `make assets` (not committed).
NHSUK_CSS: Final = STATIC / "nhsuk" / "nhsuk-frontend.min.css"

#: Navigation: (endpoint, text, roles that see it).
NAVIGATION: Final = (
    ("console.access_log", "Access log", ("ig-lead",)),
    ("console.child", "Child view", ("ig-lead",)),
    ("console.reviews", "Review queue", ("ig-lead",)),
    ("console.agreements", "Agreements", ("ig-lead", "admin")),
    ("console.requests_list", "Requests", ("dco",)),
    ("console.dashboard", "6-week dashboard", ("dco",)),
    ("console.integrity", "Audit integrity", ("ig-lead", "admin")),
    ("console.registry", "Organisations, clients and users", ("admin",)),
)

ERROR_TITLES: Final = {
    400: "The request could not be read",
    403: "You cannot do that",
    404: "Page not found",
    405: "That cannot be done here",
    409: "That has changed already",
    413: "That is too large",
    422: "There is a problem",
    500: "Sorry, there is a problem with the service",
    503: "Sorry, the service is unavailable",
}


def assets_built() -> bool:
    """Whether the NHS.UK frontend assets are in the static folder."""
    return NHSUK_CSS.is_file()


def navigation() -> list[dict[str, Any]]:
    """The header's navigation items for the signed-in person's roles."""
    return [
        {
            "href": url_for(endpoint),
            "text": text,
            "current": request.endpoint == endpoint,
        }
        for endpoint, text, roles in NAVIGATION
        if security.has_role(*roles)
    ]


def error_list(errors: Mapping[str, str]) -> list[dict[str, str]]:
    """Form errors as the error summary lists them (each links to its field; `field|n`
    keys let one field have several)."""
    return [
        {"text": message, "href": f"#{field.split('|')[0]}"} for field, message in errors.items()
    ]


def render(
    template: str,
    title: str,
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    """A console page: `template` with the common context."""
    person = security.identity()
    response = make_response(
        render_template(
            template,
            title=title,
            errors=dict(errors or {}),
            error_summary=error_list(errors or {}),
            person=person if person is not None and person.stage == "active" else None,
            navigation=navigation(),
            csrf_token=security.csrf_token(),
            csrf_field=security.CSRF_FIELD,
            assets_built=assets_built(),
            **context,
        ),
        status,
    )
    new_pre = g.get("console_new_pre")
    if new_pre:
        security.set_cookie(response, new_pre, pre=True)
    return response


def error_page(status: int, message: str | None = None) -> Response:
    """The console's error page for an HTTP status (a sentence for people, no internals)."""
    title = ERROR_TITLES.get(status, "There is a problem")
    return render("console/error.jinja", title, status=status, message=message)
