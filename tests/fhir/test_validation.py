"""Validation: R4 structure via fhir.resources R4B, then the profile rules the caller
passes; Malformed for what cannot be read, Invalid listing each problem with its expression."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.errors import Invalid, Issue, Malformed
from exchange.fhir.outcome import operation_outcome
from exchange.fhir.validation import (
    check_coding,
    has_control_character,
    parse_json,
    validate_resource,
)

ORGANIZATION = {"resourceType": "Organization", "name": "Example"}


def strict_type(resource: dict[str, Any]) -> list[Issue]:
    return check_coding(
        resource.get("type", [None])[0] if resource.get("type") else None,
        "urn:roles",
        {"la"},
        "Organization.type[0]",
    )


def test_valid_resource_passes() -> None:
    assert validate_resource(dict(ORGANIZATION), "Organization") == ORGANIZATION


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[1, 2"])
def test_unparseable_is_400(body: bytes) -> None:
    with pytest.raises(Malformed):
        parse_json(body)


def test_deep_nesting_is_refused_without_parsing() -> None:
    with pytest.raises(Malformed) as caught:
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    assert "nested deeper" in caught.value.message


def test_a_number_too_long_to_convert_is_400_not_a_crash() -> None:
    with pytest.raises(Malformed):
        parse_json(b'{"resourceType": "Patient", "x": ' + b"9" * 900_000 + b"}")


@pytest.mark.parametrize("data", [[], "x", {"resourceType": "Patient"}, {"name": "no type"}])
def test_wrong_resource_type_is_400(data: Any) -> None:
    with pytest.raises(Malformed):
        validate_resource(data, "Organization")


def test_structural_errors_are_422_with_expressions() -> None:
    with pytest.raises(Invalid) as caught:
        validate_resource(
            {"resourceType": "Organization", "active": "maybe", "colour": "blue"}, "Organization"
        )
    error = caught.value
    expressions = {e for issue in error.issues for e in issue.expression}
    assert "Organization.active" in expressions
    assert "Organization.colour" in expressions
    outcome = operation_outcome(list(error.issues))
    assert outcome["resourceType"] == "OperationOutcome" and len(outcome["issue"]) >= 2


def test_profile_checks_run_after_structure() -> None:
    with pytest.raises(Invalid) as caught:
        validate_resource(
            {**ORGANIZATION, "type": [{"coding": [{"system": "urn:roles", "code": "bogus"}]}]},
            "Organization",
            strict_type,
        )
    assert caught.value.issues[0].expression == ("Organization.type[0]",)
    assert "'bogus' is not a code of urn:roles" in caught.value.issues[0].diagnostics
    validate_resource(
        {**ORGANIZATION, "type": [{"coding": [{"system": "urn:roles", "code": "la"}]}]},
        "Organization",
        strict_type,
    )


def test_check_coding() -> None:
    assert check_coding(None, "s", {"a"}, "X.y")[0].code == "required"
    assert check_coding(None, "s", {"a"}, "X.y", required=False) == []
    assert check_coding({"system": "s", "code": "a"}, "s", {"a"}, "X.y") == []
    assert (
        check_coding({"coding": [{"system": "t", "code": "a"}]}, "s", {"a"}, "X.y")[0].code
        == "code-invalid"
    )


@given(st.text(alphabet=st.characters(max_codepoint=0x200), max_size=40))
def test_the_control_character_check_agrees_with_r4s_pattern(text: str) -> None:
    # The fast ASCII path must refuse exactly what R4's `[ \r\n\t\S]+` does.
    expected = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text) is not None
    assert has_control_character(text) is expected


def test_a_control_character_in_inline_base64_is_refused_at_its_path() -> None:
    body = {**ORGANIZATION, "alias": ["QUJD" * 20_000 + "\x0b"]}
    with pytest.raises(Invalid) as caught:
        validate_resource(body, "Organization")
    assert caught.value.issues[0].expression == ("Organization.alias[0]",)


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b"[" * 64 + b"]" * 64, False),  # exactly the limit
        (b"[" * 65 + b"]" * 65, True),
        # Both kinds counted together, at the limit and one past it.
        (b'{"a":' * 32 + b"[" * 32 + b"]" * 32 + b"}" * 32, False),
        (b'{"a":' * 32 + b"[" * 33 + b"]" * 33 + b"}" * 32, True),
        # Many brackets, but in strings or side by side: shallow, so read.
        (b'["' + b"[{" * 500 + b'"]', False),
        (b"[" + b"[]," * 500 + b"[]]", False),
        (b'{"a":' * 40 + b'["x"' + b"]" + b"}" * 40, False),
        (b'{"a":' * 40 + b"[" * 30 + b"]" * 30 + b"}" * 40, True),
    ],
)
def test_nesting_is_measured_not_guessed(body: bytes, refused: bool) -> None:
    if refused:
        with pytest.raises(Malformed, match="nested deeper"):
            parse_json(body)
    else:
        parse_json(body)
