"""A month of exchange for the console's tests, driven through the API: LA01 registers a
child, records consent and sends two advice requests to PRV01 (received 5 October, due 16
November) and a DCO quality-assurance request to ICB01; PRV01 completes one on time with a
document, the other stays open (overdue); ICB01 reads the advice break-glass; LA02 works on
a child of its own. November's six-week figure is then 50.0% (1 of 2 due completed within 6
weeks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.factories import FrozenClock, output
from tests.scenario import ICB, LA, OTHER_LA, PROVIDER, Child, Scenario

JUSTIFICATION = "Safeguarding strategy meeting today: health information needed."
#: A note an attacker hopes the console will run.
SCRIPT_NOTE = "<script>document.title='pwned'</script> Panel agreed the assessment."


@dataclass
class Month:
    """What the world holds, for assertions."""

    child: Child
    other_child: Child
    on_time: dict[str, Any]
    late: dict[str, Any]
    document: dict[str, Any]


def at(world: Scenario, clock: FrozenClock, *moment: int) -> None:
    clock.current = datetime(*moment, tzinfo=UTC)  # type: ignore[misc]
    world.forget_tokens()


def build(world: Scenario, clock: FrozenClock) -> Month:
    """The month, ending on 23 November 2026 at noon (the clock left there)."""
    at(world, clock, 2026, 10, 5, 10)
    child = world.child()
    world.consent(child)
    on_time = world.request(child, "PRV01")
    late = world.request(child, "PRV01", note=[{"text": SCRIPT_NOTE}])
    world.request(child, "ICB01", task_type="dco-quality-assurance", reason=None)
    other_child = world.child(who=OTHER_LA)
    world.consent(other_child, who=OTHER_LA)
    at(world, clock, 2026, 11, 10, 15)
    document = world.upload(child, on_time, title="Community paediatric advice")
    path = f"/fhir/Task/{on_time['id']}"
    current = world.get(path, PROVIDER).get_json()
    advice = output("advice", valueReference={"reference": f"DocumentReference/{document['id']}"})
    body = {**current, "status": "completed", "output": [*current.get("output", []), advice]}
    assert world.put(path, PROVIDER, body).status_code == 200
    at(world, clock, 2026, 11, 20, 9)
    read = world.get(
        f"/fhir/DocumentReference/{document['id']}",
        ICB,
        **{"X-Purpose-Of-Use": "safeguarding", "X-Justification": JUSTIFICATION},
    )
    assert read.status_code == 200, read.get_json()
    assert world.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 200
    at(world, clock, 2026, 11, 23, 12)
    return Month(child, other_child, on_time, late, document)
