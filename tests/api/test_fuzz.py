"""The OpenAPI-driven fuzz run (quality.md "Security"): schemathesis generates requests
for every operation in the served instance's live `/openapi.json` (valid and invalid
parameters), sent with a bearer token from the real token endpoint for a client holding
every scope, and schemathesis's `not_a_server_error` check must pass for every answer.

Derandomized (the same examples every run) and capped per operation, so the whole run
stays within a few minutes on the 2-core CI machine. Slow: `make test-slow`.

Each operation's examples run under Hypothesis directly rather than through
`schemathesis.pytest.from_fixture`, whose lazy loader relies on a pytest internal
(`Function._nodeid`) that pytest 9.2 removed; this also lets one run report every 5xx it
finds, each with the curl command that reproduces it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from tests.api.served_world import ServedWorld, served_world
from tests.conftest import PG_URL, DatabaseFactory

pytestmark = pytest.mark.slow

#: la01-everything holds system/*.cruds: every operation is reachable past the scope check.
FUZZ_CLIENT = "la01-everything"
EXAMPLES_PER_OPERATION = 250


@pytest.fixture(scope="module")
def fuzzed(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWorld]:
    """The instance under fuzzing: PostgreSQL (production's database) when the suite has
    one, else SQLite; one backend, to keep the run short."""
    backend = "postgresql" if PG_URL else "sqlite"
    with served_world(tmp_path_factory.mktemp("fuzz"), database_factory.create(backend)) as world:
        yield world


def server_errors_of(
    operation: schemathesis.APIOperation, world: ServedWorld, answers: Counter[int]
) -> dict[str, str]:
    """Fuzz one operation; every distinct server error found, with the schemathesis report
    of the first request that caused it. Every answer's status is counted in `answers`."""
    found: dict[str, str] = {}
    strategy = st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode))

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def examples(case: schemathesis.Case) -> None:
        try:
            response = case.call_and_validate(
                headers=world.bearer(FUZZ_CLIENT), checks=[not_a_server_error], timeout=30
            )
            answers[response.status_code] += 1
        except FailureGroup as failures:
            answers[getattr(failures.exceptions[0], "status_code", 500)] += 1
            for failure in failures.exceptions:
                found.setdefault(f"{operation.label}: {failure.title}", str(failures))

    examples()
    return found


def test_no_operation_answers_with_a_server_error(fuzzed: ServedWorld) -> None:
    live_openapi = schemathesis.openapi.from_url(f"{fuzzed.base}/openapi.json")
    operations = [result.ok() for result in live_openapi.get_all_operations()]
    assert len(operations) > 40  # every endpoint of api.md is described

    server_errors: dict[str, str] = {}
    answers: Counter[int] = Counter()
    for operation in operations:
        server_errors |= server_errors_of(operation, fuzzed, answers)

    print(f"fuzzed {len(operations)} operations: answers by status {sorted(answers.items())}")
    assert not server_errors, "\n".join(server_errors.values())
    assert requests.get(f"{fuzzed.base}/healthz", timeout=10).status_code == 200
