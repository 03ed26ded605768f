"""Every console page needs a signed-in person with a role, but for an explicit allow-list:
the sign-in steps (each checks the stage its session is at), sign-out and static files."""

from __future__ import annotations

from flask import Flask

PUBLIC = {
    "console.static",
    "console.login",
    "console.login_code",
    "console.login_new_password",
    "console.login_authenticator",
    "console.sign_out",
}


def test_every_console_view_is_guarded_or_on_the_allow_list(app: Flask) -> None:
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("console.")}
    unguarded = {
        endpoint
        for endpoint in endpoints
        if not hasattr(app.view_functions[endpoint], "console_roles")
    }
    assert unguarded == PUBLIC


def test_a_guarded_page_sends_a_stranger_to_sign_in(app: Flask) -> None:
    for path in ("/console/", "/console/access-log", "/console/child", "/console/dashboard"):
        response = app.test_client().get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/console/login?next=")
