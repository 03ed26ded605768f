"""Signing in and out: username and password, then a TOTP code; at first sign-in a new
password and an authenticator app (QR code drawn on the server). Each step calls one
use case of `users.service` and moves the browser to a new session token."""

from __future__ import annotations

from typing import Final

import segno
from flask import g, redirect, request, url_for
from markupsafe import Markup, escape
from werkzeug import Response

from exchange.api.console import security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.errors import Invalid
from exchange.users import service as users
from exchange.users.passwords import MIN_PASSWORD_LENGTH
from exchange.users.service import LOCKOUT, MAX_FAILURES, Proceed, Stage

_STAGE_PAGES: Final = {
    Stage.PASSWORD: "console.login_code",
    Stage.CHANGE_PASSWORD: "console.login_new_password",
    Stage.ENROL_TOTP: "console.login_authenticator",
}
_NOT_SIGNED_IN: Final = (
    "Enter a correct username and password. "
    f"After {MAX_FAILURES} failed attempts in a row, an account is locked for "
    f"{int(LOCKOUT.total_seconds() // 60)} minutes."
)
_WRONG_CODE: Final = (
    "Enter the 6-digit code your authenticator app shows now. "
    f"After {MAX_FAILURES} failed attempts in a row, an account is locked for "
    f"{int(LOCKOUT.total_seconds() // 60)} minutes."
)
_START_AGAIN: Final = "Your sign-in has expired or the account is locked. Sign in again."


def _address() -> str | None:
    return request.remote_addr


def _proceed(result: Proceed, next_page: str | None) -> Response:
    """Move the browser to the new session and the next step."""
    if result.stage == Stage.ACTIVE:
        response = redirect(security.safe_next(next_page))
    else:
        response = redirect(url_for(_STAGE_PAGES[result.stage], next=next_page))
    security.set_cookie(response, result.token)
    return response


def _start_again() -> Response:
    response = render("console/login.jinja", "Sign in", errors={"username": _START_AGAIN})
    security.clear_cookie(response)
    return response


def _resumed(stage: Stage) -> tuple[str | None, str | None]:
    """The page to go on to and the sign-in's session token; the token is None unless a
    sign-in is in progress and at `stage` (the step then starts again from the password)."""
    next_page = request.values.get("next")
    token = security.session_token()
    person = security.identity()
    if token is None or person is None or person.stage != stage:
        return next_page, None
    return next_page, token


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """Step 1: username and password."""
    next_page = request.values.get("next")
    if security.signed_in() is not None:
        return redirect(security.safe_next(next_page))
    if request.method == "GET":
        return render("console/login.jinja", "Sign in", next_page=next_page)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    errors = {}
    if not username:
        errors["username"] = "Enter your username"
    if not password:
        errors["password"] = "Enter your password"  # noqa: S105 - a message
    if errors:
        return render(
            "console/login.jinja", "Sign in", errors=errors, next_page=next_page, username=username
        )
    ctx = services()
    with ctx.database.transaction() as session:
        result = users.sign_in(
            session, username[:256], password, _address(), g.get("request_id"), ctx.clock.now()
        )
    if isinstance(result, Proceed):
        return _proceed(result, next_page)
    return render(
        "console/login.jinja",
        "Sign in",
        errors={"username": _NOT_SIGNED_IN},
        next_page=next_page,
        username=username,
    )


def _submit_code(check: users.CodeCheck, token: str, next_page: str | None) -> Response | None:
    """Submit the form's code to `check`: the response that follows (signed in, or back
    to the start when locked out or the sign-in has gone), or None when the code was
    wrong and the form is shown again."""
    ctx = services()
    with ctx.database.transaction() as session:
        result = check(
            session,
            ctx.key_provider(),
            token,
            request.form.get("code", "")[:32],
            _address(),
            g.get("request_id"),
            ctx.clock.now(),
        )
    if isinstance(result, Proceed):
        return _proceed(result, next_page)
    if result.locked or result.reason == "no-sign-in":
        return _start_again()
    return None


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> Response:
    """Step 2: the code from the person's authenticator app."""
    next_page, token = _resumed(Stage.PASSWORD)
    if token is None:
        return redirect(url_for("console.login", next=next_page))
    if request.method == "GET":
        return render("console/login_code.jinja", "Enter your security code", next_page=next_page)
    answered = _submit_code(users.verify_code, token, next_page)
    if answered is not None:
        return answered
    return render(
        "console/login_code.jinja",
        "Enter your security code",
        errors={"code": _WRONG_CODE},
        next_page=next_page,
    )


@bp.route("/login/new-password", methods=["GET", "POST"])
def login_new_password() -> Response:
    """First sign-in: choose a new password."""
    next_page, token = _resumed(Stage.CHANGE_PASSWORD)
    if token is None:
        return redirect(url_for("console.login", next=next_page))
    title = "Choose a new password"
    if request.method == "GET":
        return render(
            "console/login_new_password.jinja",
            title,
            next_page=next_page,
            min_length=MIN_PASSWORD_LENGTH,
        )
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            result = users.change_password(
                session,
                token,
                request.form.get("new-password", ""),
                request.form.get("confirm-password", ""),
                _address(),
                g.get("request_id"),
                ctx.clock.now(),
            )
    except Invalid as problem:
        errors = {issue.expression[0]: issue.diagnostics for issue in problem.issues}
        return render(
            "console/login_new_password.jinja",
            title,
            errors=errors,
            next_page=next_page,
            min_length=MIN_PASSWORD_LENGTH,
        )
    if isinstance(result, Proceed):
        return _proceed(result, next_page)
    return _start_again()


def _qr_code(uri: str) -> Markup:
    """The provisioning URI as an inline SVG QR code (no script, no external image)."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=4, title="QR code for your authenticator app", dark="#000", light="#fff"
    )
    # segno's output is markup we trust (its path data and our title); name it for
    # assistive technology.
    labelled = svg.replace(
        "<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1
    )
    return Markup(labelled)  # noqa: S704 - segno's SVG, nothing user-supplied unescaped


@bp.route("/login/authenticator", methods=["GET", "POST"])
def login_authenticator() -> Response:
    """First sign-in (or after a TOTP reset): add the console to an authenticator app and
    confirm with a code from it."""
    next_page, token = _resumed(Stage.ENROL_TOTP)
    if token is None:
        return redirect(url_for("console.login", next=next_page))
    ctx = services()
    errors: dict[str, str] = {}
    if request.method == "POST":
        answered = _submit_code(users.confirm_enrolment, token, next_page)
        if answered is not None:
            return answered
        errors["code"] = _WRONG_CODE
    with ctx.database.transaction() as session:
        enrolment = users.enrolment(session, ctx.key_provider(), token, ctx.clock.now())
    if enrolment is None:
        return _start_again()
    grouped = " ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4))
    return render(
        "console/login_authenticator.jinja",
        "Set up your authenticator app",
        errors=errors,
        next_page=next_page,
        qr_code=_qr_code(enrolment.uri),
        secret=escape(grouped),
    )


@bp.route("/sign-out", methods=["GET", "POST"])
def sign_out() -> Response:
    """Sign out: a GET asks (a link cannot carry a CSRF token), the POST ends the session."""
    token = security.session_token()
    if request.method == "GET":
        if security.signed_in() is None:
            return redirect(url_for("console.login"))
        return render("console/sign_out.jinja", "Sign out")
    if token is not None:
        ctx = services()
        with ctx.database.transaction() as session:
            users.sign_out(session, token, _address(), g.get("request_id"), ctx.clock.now())
    g.console_identity = None
    response = render("console/signed_out.jinja", "You have signed out")
    security.clear_cookie(response)
    return response
