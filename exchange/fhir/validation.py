"""Validating request bodies: R4 structure (fhir.resources' R4B models) and then this
service's profile rules, which fhir.resources does not check (required bindings, value
sets, fixed values, the profile's cardinalities).

The use case that validates passes its resource type's profile check, so there is no
registry to fill and nothing happens as a side effect of importing a module.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any, Final

from pydantic import ValidationError

from exchange.errors import Invalid, Issue, Malformed
from exchange.fhir.narrative import resource_narrative_issues

#: Nesting deeper than this is refused: deep JSON is an attack on parsers, not a resource.
MAX_DEPTH: Final = 64

ProfileCheck = Callable[[dict[str, Any]], list[Issue]]


def model_class(resource_type: str) -> Any:
    """The fhir.resources R4B model class of a resource type."""
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


#: The resource types clients write, validated against their R4B models.
VALIDATED_TYPES: Final = ("Patient", "Consent", "Task", "DocumentReference")


def load_models() -> None:
    """Import the models of `VALIDATED_TYPES` now rather than on the first request that
    needs each: the first document upload in a new worker spent most of a second importing
    fhir.resources' DocumentReference (bench/profiles/api-load.md, "Third pass")."""
    for resource_type in VALIDATED_TYPES:
        model_class(resource_type)


def parse_json(body: bytes) -> Any:
    """Parse a request body (already size-limited) as JSON; Malformed (400) if it is not
    JSON or is nested too deep."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8") from None
    if _nested_too_deep(text):
        raise Malformed(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON and numbers too long to convert (Python's
        # 4,300-digit limit on integers): neither is a resource.
        raise Malformed("the body is not valid JSON") from None


#: A complete JSON string literal (unrolled, so matching is linear).
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


def _nested_too_deep(text: str) -> bool:
    """Whether brackets nest deeper than MAX_DEPTH, counted without parsing (strings
    skipped). A body with no more opening brackets than MAX_DEPTH cannot, and counting
    them is a C loop (a resource has a few dozen; base64 has none): most bodies stop
    there. Otherwise the strings and everything but brackets are dropped by regular
    expressions first: a 64 KiB document's base64 was a third of an upload's time when
    every character went through this loop (bench/profiles/api-load.md). An unterminated
    string's brackets are counted too, which only makes a body that is not JSON anyway
    fail as too deep rather than as malformed."""
    if _opening_brackets_at_most(text, MAX_DEPTH):
        return False
    depth = 0
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _opening_brackets_at_most(text: str, limit: int) -> bool:
    """Whether `text` holds at most `limit` opening brackets: found one by one with
    `str.find` (memchr), stopping past the limit. `str.count` looked at every character,
    48 µs for a 64 KiB document against 3 (bench/profiles/api-load.md, "Fifth pass")."""
    found = 0
    for bracket in "[{":
        at = text.find(bracket)
        while at != -1:
            found += 1
            if found > limit:
                return False
            at = text.find(bracket, at + 1)
    return True


def _pydantic_issues(error: ValidationError, resource_type: str) -> list[Issue]:
    issues = []
    for detail in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in detail["loc"] if part != "__root__")
        expression = f"{resource_type}.{path}" if path else resource_type
        issues.append(Issue("error", "structure", f"{expression}: {detail['msg']}", (expression,)))
    return issues


def check_resource_type(data: Any, resource_type: str) -> dict[str, Any]:
    """`data` as a resource of `resource_type`, or Malformed (400) if it is not one."""
    if not isinstance(data, dict):
        raise Malformed("the body must be a JSON object (a FHIR resource)")
    if data.get("resourceType") != resource_type:
        raise Malformed(
            f"resourceType must be {resource_type}",
            issues=[
                Issue(
                    "error",
                    "structure",
                    f"resourceType must be {resource_type}",
                    (f"{resource_type}.resourceType",),
                )
            ],
        )
    return data


def validate_resource(
    data: Any, resource_type: str, profile: ProfileCheck | None = None
) -> dict[str, Any]:
    """Check `data` is a valid `resource_type` under R4 and this service's `profile`.

    Raises Malformed (400) when the body is not a resource of that type, Invalid (422)
    listing every problem (with its FHIRPath expression) when it breaks R4 or the profile.
    """
    resource = check_resource_type(data, resource_type)
    try:
        model_class(resource_type).model_validate(data)
    except ValidationError as error:
        raise Invalid(_pydantic_issues(error, resource_type)) from None
    issues = _control_character_issues(data, resource_type) or resource_narrative_issues(data)
    issues += profile(data) if profile is not None else []
    errors = [issue for issue in issues if issue.severity in ("error", "fatal")]
    if errors:
        raise Invalid(errors)
    return resource


#: R4's `string` is `[ \r\n\t\S]+`: no other control character (PostgreSQL cannot even
#: store NUL in JSON).
_CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


#: Every ASCII character a FHIR string may hold: printable ones, tab and line breaks.
_ALLOWED_ASCII: Final = bytes(range(0x20, 0x7F)) + b"\t\n\r"


def has_control_character(text: str) -> bool:
    """Whether `text` holds a control character R4 strings do not allow. An ASCII string
    (the usual case, and 64 KiB of inline base64: 0.2 ms in the regular expression) is
    checked by deleting every allowed byte at C speed and seeing whether any is left."""
    if text.isascii():
        return bool(text.encode("ascii").translate(None, _ALLOWED_ASCII))
    return _CONTROL_CHARACTER.search(text) is not None


def _control_character_issues(data: Any, path: str) -> list[Issue]:
    """Control characters anywhere in the resource (keys or values), each with its path."""
    if isinstance(data, str):
        return (
            [
                Issue(
                    "error",
                    "value",
                    f"{path}: control characters are not allowed in FHIR strings",
                    (path,),
                )
            ]
            if has_control_character(data)
            else []
        )
    if isinstance(data, dict):
        issues = []
        for key, value in data.items():
            if _CONTROL_CHARACTER.search(key):
                issues.append(
                    Issue(
                        "error",
                        "structure",
                        f"{path}: an element name has control characters",
                        (path,),
                    )
                )
            issues += _control_character_issues(value, f"{path}.{key}")
        return issues
    if isinstance(data, list):
        return [
            issue
            for index, item in enumerate(data)
            for issue in _control_character_issues(item, f"{path}[{index}]")
        ]
    return []


def check_coding(
    value: Any, system: str, codes: set[str], expression: str, *, required: bool = True
) -> list[Issue]:
    """A required binding: `value` (a CodeableConcept or Coding) has a coding of `system`
    whose code is in `codes`."""
    if value is None:
        return (
            [Issue("error", "required", f"{expression} is required", (expression,))]
            if required
            else []
        )
    codings = value.get("coding", []) if "coding" in value or "text" in value else [value]
    matching = [c for c in codings if isinstance(c, dict) and c.get("system") == system]
    if not matching:
        return [
            Issue(
                "error",
                "code-invalid",
                f"{expression} must have a coding from {system}",
                (expression,),
            )
        ]
    bad = [c.get("code") for c in matching if c.get("code") not in codes]
    if bad:
        return [
            Issue(
                "error",
                "code-invalid",
                f"{expression}: {bad[0]!r} is not a code of {system}",
                (expression,),
            )
        ]
    return []
