"""The console blueprint: who is signed in, CSRF on every POST, the console's one error
shape (an HTML page, each refusal audited as the API audits its own), and the home page.
Each page's views are in a module of their own (`login`, `access_log`, `child`, ...)."""

from __future__ import annotations

import logging

from flask import Blueprint, g, request
from werkzeug import Response
from werkzeug.exceptions import BadRequest, HTTPException

from exchange.api.console import security
from exchange.api.console.pages import error_page, render
from exchange.api.context import services
from exchange.api.errors import DOMAIN_ERRORS
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record_refusal
from exchange.errors import DomainError, Subject
from exchange.fhir.validation import has_control_character

log = logging.getLogger(__name__)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    static_folder="static",
    static_url_path="/static",
)


def _has_control_characters() -> bool:
    """Whether the URL's parts, the query string or a posted form hold a control character
    R4 strings do not allow (tab, LF and CR pass: a textarea sends them). PostgreSQL cannot
    even compare NUL, so one in a URL reached the database as a 503."""
    values = [str(value) for value in (request.view_args or {}).values()]
    values += [text for name, given in request.args.lists() for text in (name, *given)]
    if request.method == "POST":
        values += [text for name, given in request.form.lists() for text in (name, *given)]
    return any(has_control_character(text) for text in values)


@bp.before_request
def _before() -> None:
    if request.endpoint == "console.static":
        return
    if _has_control_characters():
        raise BadRequest("control characters are not allowed in a console request")
    security.load_identity()
    if request.method == "POST":
        security.check_csrf()


def audit_console_refusal(status: int, reason: str, subject: Subject | None = None) -> None:
    """Record a refused console request (after its own transaction ended), as the API
    records its refusals: who, from where, why, and what it concerned."""
    person = security.identity()
    subject = subject or Subject()
    ctx = services()
    record_refusal(
        ctx.database,
        AuditEntry(
            kind=AuditKind.PAGE_VIEW,
            action=Action.READ if request.method == "GET" else Action.EXECUTE,
            outcome=Outcome.for_status(status),
            actor=person.actor(request.remote_addr)
            if person is not None
            else Actor(address=request.remote_addr),
            outcome_desc=reason,
            entities=subject.entities,
            patient_id=subject.patient_id,
            custodian=subject.custodian,
            request_id=g.get("request_id"),
            details={"page": request.endpoint or request.path},
        ),
        ctx.clock,
    )


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    status = DOMAIN_ERRORS.get(error.code, (400, "invalid"))[0]
    audit_console_refusal(status, error.reason, error.subject)
    return error_page(status, error.message)


@bp.errorhandler(security.CsrfRefused)
def _csrf_refused(error: security.CsrfRefused) -> Response:
    audit_console_refusal(403, "csrf-token-refused")
    return error_page(403, error.description)


@bp.errorhandler(security.RoleRefused)
def _role_refused(error: security.RoleRefused) -> Response:
    audit_console_refusal(403, "role-not-permitted")
    return error_page(403, error.description)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return error_page(error.code or 500)


@bp.get("/")
@security.requires()
def home() -> Response:
    """The start page: what the signed-in person can do."""
    return render("console/home.jinja", "Console")
