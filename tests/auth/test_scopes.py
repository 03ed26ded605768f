"""SMART scope parsing (v2 `cruds` subsequences and the v1 forms)."""

from __future__ import annotations

import pytest

from exchange.auth.scopes import Scope, ScopeError, parse_scope


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("system/Patient.cruds", Scope("Patient", "cruds")),
        ("system/DocumentReference.crs", Scope("DocumentReference", "crs")),
        ("system/Binary.r", Scope("Binary", "r")),
        ("system/Task.read", Scope("Task", "rs")),
        ("system/Task.write", Scope("Task", "cud")),
        ("system/*.read", Scope("*", "rs")),
        ("system/Consent.*", Scope("Consent", "cruds")),
    ],
)
def test_valid_scopes(text: str, scope: Scope) -> None:
    assert parse_scope(text) == scope


@pytest.mark.parametrize(
    "text",
    [
        "system/Patient.rc",
        "system/Patient.rr",
        "system/Patient.x",
        "patient/Patient.rs",
        "system/Observation.rs",
        "system/Patient.",
        "system/Patient",
        "system/Patient.rs extra",
    ],
)
def test_invalid_scopes(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_allows() -> None:
    assert parse_scope("system/*.read").allows("Consent", "s")
    assert not parse_scope("system/*.read").allows("Consent", "c")
    assert parse_scope("system/Task.rus").allows("Task", "u")
    assert not parse_scope("system/Task.rus").allows("Patient", "r")
