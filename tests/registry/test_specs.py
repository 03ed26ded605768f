"""Bootstrap validation: every problem named with its entry and field, nothing partial."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.registry.specs import BootstrapError, parse_bootstrap
from tests.factories import example_bootstrap


def _problems(document: Any) -> list[str]:
    with pytest.raises(BootstrapError) as caught:
        parse_bootstrap(document)
    return caught.value.problems


def test_example_file_is_valid() -> None:
    spec = parse_bootstrap(example_bootstrap())
    assert [o.ods for o in spec.organisations] == ["LA01", "PRV01", "PRV02", "ICB01"]
    assert spec.clients[2].jwks_uri == "https://dco-tools.icb01.example/.well-known/jwks.json"
    assert spec.organisations[3].break_glass is True


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda d: d["organisations"][0].update(role="council"),
            "organisations[0] (LA01): role 'council' must be one of provider, icb, la",
        ),
        (
            lambda d: d["organisations"][1].update(commissioner="LA01"),
            "organisations[1] (PRV01): commissioner 'LA01' is not a registered ICB",
        ),
        (
            lambda d: d["organisations"].append(dict(d["organisations"][0])),
            "organisations[4] (LA01): ods 'LA01' appears twice",
        ),
        (
            lambda d: d["organisations"][0].update(colour="blue"),
            "organisations[0] (LA01): unknown field 'colour'",
        ),
        (
            lambda d: d["agreements"][0].update(parties=["LA01"]),
            "agreements[0] (dsa-2026-01): parties must name at least two organisations",
        ),
        (
            lambda d: d["agreements"][0].update(purposes=["marketing"]),
            "agreements[0] (dsa-2026-01): purpose 'marketing' is not a code of CodeSystem purpose",
        ),
        (
            lambda d: d["agreements"][0].update(end="2025-01-01"),
            "agreements[0] (dsa-2026-01): end is before start",
        ),
        (
            lambda d: d["agreements"][0].update(start="1st Jan"),
            "agreements[0] (dsa-2026-01): start '1st Jan' is not a date (YYYY-MM-DD)",
        ),
        (
            lambda d: d["clients"][0].update(organisation="ZZ99"),
            "clients[0] (la01-case-system): organisation 'ZZ99' is not a registered organisation",
        ),
        (
            lambda d: d["clients"][0].update(jwks_uri="https://x.example/jwks"),
            "clients[0] (la01-case-system): exactly one of jwks and jwks_uri is required",
        ),
        (
            lambda d: d["clients"][2].update(jwks_uri="http://dco.example/jwks"),
            "clients[2] (icb01-dco): jwks_uri must be an https URL",
        ),
        (
            lambda d: d["clients"][0]["jwks"]["keys"][0].update(d="secret"),
            "clients[0] (la01-case-system): jwks.keys[0] contains private or symmetric "
            "key material",
        ),
        (
            lambda d: d["clients"][0]["jwks"]["keys"][0].update(x="not-a-point"),
            "clients[0] (la01-case-system): jwks is not a valid key set",
        ),
        (
            lambda d: d["users"][0].update(password="short"),
            "users[0] (ig.lead@la01): password must be at least 12 characters",
        ),
        (
            lambda d: d["users"][0].update(password_hash="$2b$bcrypt"),
            "users[0] (ig.lead@la01): exactly one of password and password_hash is required",
        ),
    ],
)
def test_problems_name_entry_and_field(mutate: Any, problem: str) -> None:
    document = example_bootstrap()
    mutate(document)
    problems = _problems(document)
    assert any(p.startswith(problem) for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    document = example_bootstrap()
    document["organisations"][0]["role"] = "council"
    document["users"][2]["roles"] = ["root"]
    assert len(_problems(document)) == 2


def test_not_an_object() -> None:
    assert _problems(["a"]) == ["the file must hold a JSON or YAML object"]
    assert _problems({"widgets": []}) == ["file: unknown section 'widgets'"]


def test_the_worlds_precomputed_hash_is_the_example_password() -> None:
    from exchange.users.passwords import verify_password
    from tests.conftest import EXAMPLE_PASSWORD_HASH

    assert verify_password(EXAMPLE_PASSWORD_HASH, "change-me-at-first-login")
    assert not verify_password(EXAMPLE_PASSWORD_HASH, "change-me-at-first-logon")
