"""Validating request bodies: R4 structure (fhir.resources' R4B models) and then this
service's profile rules, which fhir.resources does not check (required bindings, value
sets, fixed values, the profile's cardinalities).

Profile checks are registered per resource type by the feature that owns the type, so
every resource type gets both checks through the one `validate_resource` call.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any, Final

from pydantic import ValidationError

from exchange.fhir.outcome import FhirError, Issue, invalid

#: A body larger than this is refused before parsing (`api.md`: 413). Binary uploads stream
#: and have their own limit.
MAX_RESOURCE_BYTES: Final = 1024 * 1024
#: Nesting deeper than this is refused: deep JSON is an attack on parsers, not a resource.
MAX_DEPTH: Final = 64

ProfileCheck = Callable[[dict[str, Any]], list[Issue]]
_profile_checks: dict[str, list[ProfileCheck]] = {}


def register_profile_check(resource_type: str, check: ProfileCheck) -> None:
    """Add a profile rule for a resource type (called by the feature owning the type)."""
    _profile_checks.setdefault(resource_type, []).append(check)


def model_class(resource_type: str) -> Any:
    """The fhir.resources R4B model class of a resource type."""
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def parse_json(body: bytes) -> Any:
    """Parse a request body as JSON; 400 if it is not JSON, 413 if it is too big or deep."""
    if len(body) > MAX_RESOURCE_BYTES:
        raise FhirError(413, "too-costly", "the resource is larger than this service accepts")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FhirError(400, "structure", "the body is not UTF-8") from None
    if _nesting_depth(text) > MAX_DEPTH:
        raise FhirError(400, "structure", f"the JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise FhirError(400, "structure", "the body is not valid JSON") from None


def _nesting_depth(text: str) -> int:
    """The maximum bracket depth, counted without parsing (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _pydantic_issues(error: ValidationError, resource_type: str) -> list[Issue]:
    issues = []
    for detail in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in detail["loc"] if part != "__root__")
        expression = f"{resource_type}.{path}" if path else resource_type
        issues.append(Issue("error", "structure", f"{expression}: {detail['msg']}", (expression,)))
    return issues


def validate_resource(data: Any, resource_type: str) -> dict[str, Any]:
    """Check `data` is a valid `resource_type` under R4 and this service's profile.

    Raises `FhirError` 400 when the body is not a resource of that type, 422 listing every
    problem (with its FHIRPath expression) when it breaks R4 or the profile.
    """
    if not isinstance(data, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a FHIR resource)")
    actual = data.get("resourceType")
    if actual != resource_type:
        raise FhirError(
            400,
            "structure",
            f"resourceType must be {resource_type}",
            expression=(f"{resource_type}.resourceType",),
        )
    try:
        model_class(resource_type).model_validate(data)
    except ValidationError as error:
        raise invalid(_pydantic_issues(error, resource_type)) from None
    issues = [issue for check in _profile_checks.get(resource_type, []) for issue in check(data)]
    errors = [issue for issue in issues if issue.severity in ("error", "fatal")]
    if errors:
        raise invalid(errors)
    return data


def check_coding(
    value: Any, system: str, codes: set[str], expression: str, *, required: bool = True
) -> list[Issue]:
    """A required binding: `value` (a CodeableConcept or Coding) has a coding of `system`
    whose code is in `codes`."""
    if value is None:
        return [Issue("error", "required", f"{expression} is required", (expression,))] if required else []
    codings = value.get("coding", []) if "coding" in value or "text" in value else [value]
    matching = [c for c in codings if isinstance(c, dict) and c.get("system") == system]
    if not matching:
        return [
            Issue("error", "code-invalid", f"{expression} must have a coding from {system}", (expression,))
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
