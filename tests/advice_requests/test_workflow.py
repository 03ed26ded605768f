"""`check_change` as a pure rule (no database, no app): every row of the transition table for
the right party and the other, changes nobody may make, append-only notes and outputs, the
not-known-to-service attestations, written reasons, and completion with the owner's advice
document."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.advice_requests.workflow import (
    OWNER,
    REQUESTER,
    TRANSITIONS,
    Document,
    NotYourChange,
    check_change,
)
from exchange.api.errors import DOMAIN_ERRORS
from exchange.errors import DomainError, Invalid
from tests.factories import CB, output, status_reason, task_json

TASK_ID = "5b2d1c9e-0d1a-4c55-9a53-1f0e4a3d2b71"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
PREVIOUS_OWNER = "previous-owner"
ADVICE = "DocumentReference/advice"
REASONS = "DocumentReference/reasons"
DOCUMENTS = {
    ADVICE: Document("health-advice", "PRV01", frozenset({TASK_ID})),
    REASONS: Document("reasons-for-not-complying", "PRV01", frozenset({TASK_ID})),
    "DocumentReference/other-custodian": Document("health-advice", "PRV02", frozenset({TASK_ID})),
    "DocumentReference/other-task": Document("health-advice", "PRV01", frozenset({"another-task"})),
    "DocumentReference/dco-feedback": Document("dco-qa-feedback", "PRV01", frozenset({TASK_ID})),
    "DocumentReference/reasons-other-task": Document(
        "reasons-for-not-complying", "PRV01", frozenset({"another-task"})
    ),
}
NOT_KNOWN = [
    output("not-on-waiting-list", valueBoolean=True),
    output("not-seen-in-last-12-months", valueBoolean=True),
]
WRITTEN_REASONS = {"text": "Complying would breach our statutory duties to others."}


def _task(status: str = "requested", **extra: Any) -> dict[str, Any]:
    """A Task as stored: the LA01's request to PRV01."""
    return {
        **task_json("0f1e2d3c-4b5a-4968-8776-655443322110", "PRV01"),
        "id": TASK_ID,
        "status": status,
        "requester": {"identifier": {"system": ODS, "value": "LA01"}},
        "meta": {"versionId": "1", "lastUpdated": "2026-11-23T12:00:00.000Z"},
        **extra,
    }


def _advice(reference: str = ADVICE) -> dict[str, Any]:
    return output("advice", valueReference={"reference": reference})


def _check(old: dict[str, Any], new: dict[str, Any], roles: set[str]) -> Any:
    return check_change(old, new, roles, TASK_ID, DOCUMENTS.get)


def _refusal(old: dict[str, Any], new: dict[str, Any], roles: set[str]) -> tuple[int, DomainError]:
    """The HTTP status the one table gives the refusal, and the refusal."""
    with pytest.raises(DomainError) as refused:
        _check(old, new, roles)
    return DOMAIN_ERRORS[refused.value.code][0], refused.value


def _expressions(error: DomainError) -> list[str]:
    return [expression for issue in error.issues for expression in issue.expression]


# What each kind of transition needs, so that only the party decides.
NEEDS: dict[str, dict[str, Any]] = {
    "accept": {},
    "start": {},
    "complete": {"output": [_advice()]},
    "reject": {"statusReason": status_reason("wrong-service")},
    "cancel": {"statusReason": status_reason("withdrawn-by-requester")},
}
ROWS = [(old, new, who, kind) for (old, new), (who, kind) in sorted(TRANSITIONS.items())]


@pytest.mark.parametrize(
    ("old_status", "new_status", "who", "kind"),
    ROWS,
    ids=[f"{old}->{new}" for old, new, _, _ in ROWS],
)
def test_each_transition_is_the_right_partys(
    old_status: str, new_status: str, who: str, kind: str
) -> None:
    old = _task(old_status)
    new = {**old, "status": new_status, **NEEDS[kind]}
    change = _check(old, new, {who})
    assert change.kind == kind
    assert change.closes == (kind in ("complete", "reject", "cancel"))
    other = REQUESTER if who == OWNER else OWNER
    status, error = _refusal(old, new, {other})
    assert status == 403
    assert isinstance(error, NotYourChange)
    assert error.code == "forbidden"


@pytest.mark.parametrize("old_status", ["requested", "accepted"])
def test_forwarding_is_the_owners(old_status: str) -> None:
    old = _task(old_status)
    new = {
        **old,
        "status": "requested",
        "statusReason": status_reason("forwarded"),
        "owner": {"identifier": {"system": ODS, "value": "ICB01"}},
    }
    change = _check(old, new, {OWNER})
    assert (change.kind, change.new_owner, change.closes) == ("forward", "ICB01", False)
    assert _refusal(old, new, {REQUESTER})[0] == 403
    assert _refusal(old, new, {PREVIOUS_OWNER})[0] == 403


@pytest.mark.parametrize(
    ("old_status", "changes", "expression"),
    [
        ("in-progress", {"status": "accepted"}, "Task.status"),  # not in the table
        ("accepted", {"status": "requested"}, "Task.status"),  # back without forwarding
        ("completed", {"status": "in-progress"}, "Task.status"),  # closed stays closed
        ("cancelled", {"status": "accepted"}, "Task.status"),
        ("requested", {"status": "draft"}, "Task.status"),
        (
            "requested",
            {"restriction": {"period": {"end": "2030-01-01"}}},
            "Task.restriction",
        ),  # the LA's clock
        (
            "requested",
            {
                "code": {
                    "coding": [
                        {"system": f"{CB}/CodeSystem/task-type", "code": "dco-quality-assurance"}
                    ]
                }
            },
            "Task.code",
        ),
        ("requested", {"for": {"reference": "Patient/someone-else"}}, "Task.for"),
        (
            "requested",
            {"requester": {"identifier": {"system": ODS, "value": "LA02"}}},
            "Task.requester",
        ),
        (
            "requested",
            {"statusReason": status_reason("wrong-service")},
            "Task.statusReason",
        ),  # without a status change
        (
            "requested",
            {"status": "rejected", "statusReason": status_reason("forwarded")},
            "Task.statusReason",
        ),
        (
            "in-progress",
            {
                "status": "requested",
                "statusReason": status_reason("forwarded"),
                "owner": {"identifier": {"system": ODS, "value": "ICB01"}},
            },
            "Task.status",
        ),  # once started
        (
            "requested",
            {"status": "requested", "owner": {"identifier": {"system": ODS, "value": "ICB01"}}},
            "Task.statusReason",
        ),  # forwarding says so
        (
            "requested",
            {"statusReason": status_reason("forwarded"), "owner": {"display": "ICB01"}},
            "Task.owner",
        ),
    ],
)
@pytest.mark.parametrize("roles", [{OWNER}, {REQUESTER}], ids=["owner", "requester"])
def test_a_change_nobody_may_make_is_422_whoever_asks(
    old_status: str, changes: dict[str, Any], expression: str, roles: set[str]
) -> None:
    old = _task(old_status)
    status, error = _refusal(old, {**old, **changes}, roles)
    assert status == 422
    assert isinstance(error, Invalid)
    assert _expressions(error) == [expression]


@pytest.mark.parametrize("roles", [{OWNER}, {REQUESTER}], ids=["owner", "requester"])
def test_either_party_may_append_a_note(roles: set[str]) -> None:
    old = _task()
    change = _check(
        old, {**old, "note": [*old["note"], {"text": "Parents' views attached."}]}, roles
    )
    assert (change.kind, change.closes, change.clock_exception) == ("annotate", False, False)


def test_a_previous_owner_may_change_nothing() -> None:
    old = _task()
    new = {**old, "note": [*old["note"], {"text": "We passed this on."}]}
    assert _refusal(old, new, {PREVIOUS_OWNER})[0] == 403


@pytest.mark.parametrize(
    "notes",
    [
        [],
        [{"text": "EHC needs assessment agreed at panel on 2026-11-19."}],
        [{"text": "Added first."}, {"text": "EHC needs assessment agreed at panel on 2026-11-18."}],
    ],
    ids=["removed", "rewritten", "inserted-before"],
)
def test_notes_are_append_only(notes: list[dict[str, Any]]) -> None:
    old = _task()
    status, error = _refusal(old, {**old, "note": notes}, {OWNER})
    assert status == 422
    assert _expressions(error) == ["Task.note"]


def test_outputs_are_append_only() -> None:
    old = _task("rejected", statusReason=status_reason("not-known-to-service"), output=NOT_KNOWN)
    status, error = _refusal(old, {**old, "output": NOT_KNOWN[:1]}, {OWNER})
    assert status == 422
    assert _expressions(error) == ["Task.output"]


def test_a_requester_may_not_add_outputs() -> None:
    old = _task()
    exception = output(
        "clock-exception",
        valueCodeableConcept={
            "coding": [
                {"system": f"{CB}/CodeSystem/clock-exception-reason", "code": "missed-appointment"}
            ]
        },
    )
    new = {
        **old,
        "output": [exception],
        "note": [*old["note"], {"text": "Two appointments missed."}],
    }
    assert _check(old, new, {OWNER}).clock_exception is True
    assert _refusal(old, new, {REQUESTER})[0] == 403
    assert _expressions(_refusal(old, {**new, "note": old["note"]}, {OWNER})[1]) == [
        "Task.note"
    ]  # says why
    assert (
        _refusal(
            _task("completed"),
            {**_task("completed"), "output": [exception], "note": new["note"]},
            {OWNER},
        )[0]
        == 422
    )  # only while open


def _rejection(reason: str, **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    old = _task()
    return old, {**old, "status": "rejected", "statusReason": status_reason(reason), **changes}


@pytest.mark.parametrize(
    ("attestations", "allowed"),
    [
        (NOT_KNOWN, True),
        (list(reversed(NOT_KNOWN)), True),
        ([], False),
        (NOT_KNOWN[:1], False),
        (NOT_KNOWN[1:], False),
        ([NOT_KNOWN[0], output("not-seen-in-last-12-months", valueBoolean=False)], False),
        ([output("not-on-waiting-list", valueBoolean=False), NOT_KNOWN[1]], False),
    ],
    ids=[
        "both",
        "both-reversed",
        "none",
        "waiting-list-only",
        "seen-only",
        "seen-false",
        "waiting-list-false",
    ],
)
def test_not_known_to_service_needs_both_attestations_true(
    attestations: list[dict[str, Any]], allowed: bool
) -> None:
    old, new = _rejection("not-known-to-service", output=attestations)
    if allowed:
        assert _check(old, new, {OWNER}).kind == "reject"
    else:
        status, error = _refusal(old, new, {OWNER})
        assert status == 422
        assert _expressions(error) == ["Task.output"]


@pytest.mark.parametrize("reason", ["incompatible-with-duties", "adverse-effect-on-functions"])
@pytest.mark.parametrize(
    ("changes", "allowed"),
    [
        ({"note": [*_task()["note"], WRITTEN_REASONS]}, True),
        ({"note": [*_task()["note"], {"text": "x" * 20}]}, True),
        ({"output": [_advice(REASONS)]}, True),
        ({}, False),  # the request's own note is not the owner's reasons
        ({"note": [*_task()["note"], {"text": "x" * 19}]}, False),
        ({"note": [*_task()["note"], {"text": " " * 10 + "too short" + " " * 10}]}, False),
        ({"output": [_advice("DocumentReference/reasons-other-task")]}, False),
        ({"output": [_advice(ADVICE)]}, False),  # advice is not reasons
        ({"output": [_advice("DocumentReference/missing")]}, False),
    ],
    ids=[
        "note",
        "note-20",
        "document",
        "none",
        "note-19",
        "padded",
        "other-task",
        "not-reasons",
        "missing",
    ],
)
def test_the_s31_exceptions_need_written_reasons(
    reason: str, changes: dict[str, Any], allowed: bool
) -> None:
    old, new = _rejection(reason, **changes)
    if allowed:
        assert _check(old, new, {OWNER}).kind == "reject"
    else:
        status, error = _refusal(old, new, {OWNER})
        assert status == 422
        assert _expressions(error) == ["Task.note"]


def test_a_rejection_needs_one_of_its_reasons() -> None:
    for reason in ("withdrawn-by-requester", "forwarded"):
        old, new = _rejection(reason)
        assert _expressions(_refusal(old, new, {OWNER})[1]) == ["Task.statusReason"]
    old = _task()
    assert _expressions(_refusal(old, {**old, "status": "rejected"}, {OWNER})[1]) == [
        "Task.statusReason"
    ]


def test_cancelling_needs_withdrawn_by_requester() -> None:
    old = _task("accepted")
    status, error = _refusal(old, {**old, "status": "cancelled"}, {REQUESTER})
    assert (status, _expressions(error)) == (422, ["Task.statusReason"])


@pytest.mark.parametrize(
    ("outputs", "allowed"),
    [
        ([_advice()], True),
        ([*NOT_KNOWN, _advice()], True),
        ([], False),
        ([_advice("DocumentReference/other-custodian")], False),  # not held by the owner
        ([_advice("DocumentReference/other-task")], False),  # not this Task's
        ([_advice("DocumentReference/dco-feedback")], False),  # not advice for this kind of request
        ([_advice("DocumentReference/missing")], False),  # no such (current) document
        ([output("not-on-waiting-list", valueBoolean=True)], False),
    ],
    ids=[
        "advice",
        "with-others",
        "none",
        "other-custodian",
        "other-task",
        "wrong-type",
        "missing",
        "no-advice",
    ],
)
def test_completion_needs_the_owners_advice_document(
    outputs: list[dict[str, Any]], allowed: bool
) -> None:
    old = _task("in-progress")
    new = {**old, "status": "completed", "output": outputs}
    if allowed:
        assert _check(old, new, {OWNER}).kind == "complete"
    else:
        status, error = _refusal(old, new, {OWNER})
        assert status == 422
        assert _expressions(error) == ["Task.output"]


def test_dco_quality_assurance_is_completed_with_feedback() -> None:
    old = _task(
        "in-progress",
        code={
            "coding": [{"system": f"{CB}/CodeSystem/task-type", "code": "dco-quality-assurance"}]
        },
    )
    assert (
        _check(
            old,
            {**old, "status": "completed", "output": [_advice("DocumentReference/dco-feedback")]},
            {OWNER},
        ).kind
        == "complete"
    )
    assert _refusal(old, {**old, "status": "completed", "output": [_advice()]}, {OWNER})[0] == 422


def test_the_rules_refuse_before_the_party_does() -> None:
    # The requester may not complete, but a completion without advice is refused as such.
    old = _task("in-progress")
    status, error = _refusal(old, {**old, "status": "completed"}, {REQUESTER})
    assert (status, _expressions(error)) == (422, ["Task.output"])


def test_server_managed_elements_are_ignored() -> None:
    old = _task()
    new = {
        **old,
        "meta": {},
        "businessStatus": {"text": "done"},
        "lastModified": "2030-01-01T00:00:00Z",
        "executionPeriod": {"end": "2030-01-01"},
        "status": "accepted",
    }
    assert _check(old, new, {OWNER}).kind == "accept"
