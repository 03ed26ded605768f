"""The bad-input corpus (`tests/bad_inputs/`, quality.md "Security") replayed against one
served instance (`exchange serve`, gunicorn) per database backend: every case answers its
expected 4xx with an OperationOutcome (RFC 6749 JSON on `/oauth2`), stores nothing, and
leaves the server healthy. The corpus format is described in `tests/bad_inputs/README.md`."""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import re
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.api.bad_input_bodies import GENERATORS, ChunkedBody
from tests.api.served_world import ServedWorld, served_world
from tests.conftest import DatabaseFactory
from tests.factories import nhs_number

CORPUS = Path(__file__).resolve().parents[1] / "bad_inputs"
PLACEHOLDERS = ("patient_id", "consent_id", "task_id", "registered_nhs_number", "fresh_nhs_number")
BODY_KINDS = ("json", "text", "base64", "generator")
OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}


def _unregistered_nhs_numbers() -> Iterator[str]:
    """Valid NHS numbers, each once (neighbouring seeds can give the same number)."""
    previous = None
    for seed in itertools.count(700_000):
        number = nhs_number(seed)
        if number != previous:
            yield number
        previous = number


_fresh_nhs_numbers = _unregistered_nhs_numbers()


@dataclass(frozen=True)
class BadInput:
    """One corpus file: a request that must be refused, and the status it must get."""

    name: str
    why: str
    client: str | None
    method: str
    path: str
    expected_status: int
    query: list[list[str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)  # one of BODY_KINDS -> its value
    expected_expression: str | None = None


def load_bad_input(path: Path) -> BadInput:
    """Read a corpus file."""
    document = json.loads(path.read_text(encoding="utf-8"))
    body = {kind: document.pop(kind) for kind in BODY_KINDS if kind in document}
    return BadInput(body=body, **document)


CORPUS_FILES = sorted(CORPUS.glob("*.json"))


@pytest.fixture(scope="module")
def served(
    backend: str, database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWorld]:
    """One served instance per backend for the whole corpus."""
    with served_world(
        tmp_path_factory.mktemp(f"bad-inputs-{backend}"), database_factory.create(backend)
    ) as world:
        yield world


def filled(value: Any, placeholders: dict[str, str]) -> Any:
    """`value` with every `{placeholder}` in its strings replaced."""
    if isinstance(value, str):
        for name, replacement in placeholders.items():
            value = value.replace(f"{{{name}}}", replacement)
        return value
    if isinstance(value, list):
        return [filled(item, placeholders) for item in value]
    if isinstance(value, dict):
        return {key: filled(item, placeholders) for key, item in value.items()}
    return value


def request_body(bad_input: BadInput, placeholders: dict[str, str]) -> bytes | ChunkedBody | None:
    """The bytes (or chunked stream) a case sends."""
    kind, value = next(iter(bad_input.body.items()), (None, None))
    if kind == "json":
        return json.dumps(filled(value, placeholders), ensure_ascii=False).encode("utf-8")
    if kind == "text":
        return str(filled(value, placeholders)).encode("utf-8")
    if kind == "base64":
        return base64.b64decode(str(value))
    if kind == "generator":
        return GENERATORS[str(value)]()
    return None


@dataclass(frozen=True)
class Answer:
    """What the server answered, and how many body bytes had been sent by then."""

    status: int
    content_type: str
    body: bytes
    sent: int


def _frames(body: bytes | ChunkedBody | None) -> Iterator[bytes]:
    if isinstance(body, ChunkedBody):
        for piece in body.pieces():
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        yield b"0\r\n\r\n"
    elif body:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]


def send(
    base: str, method: str, target: str, headers: dict[str, str], body: bytes | ChunkedBody | None
) -> Answer:
    """One request, its target sent exactly as given (no client-side normalisation of `..`
    or percent-encoding). The body goes piece by piece and stops as soon as the server
    answers, as a server that refuses early would have it; a ChunkedBody is sent with
    `Transfer-Encoding: chunked`, so no Content-Length warns the server of its size."""
    address = urlsplit(base)
    framing = (
        {"Transfer-Encoding": "chunked"}
        if isinstance(body, ChunkedBody)
        else ({"Content-Length": str(len(body))} if body is not None else {})
    )
    head = [
        f"{method} {target} HTTP/1.1",
        f"Host: {address.netloc}",
        *(f"{name}: {value}" for name, value in {**headers, **framing}.items()),
    ]
    sock = socket.create_connection(
        (address.hostname or "127.0.0.1", address.port or 80), timeout=120
    )
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("utf-8"))
        sock.setblocking(False)
        sent = 0
        answered = False
        for frame in _frames(body):
            pending = memoryview(frame)
            while pending and not answered:
                readable, writable, _ = select.select([sock], [sock], [], 60)
                if readable:
                    answered = True
                elif not writable:
                    raise TimeoutError("the server neither read the body nor answered for 60 s")
                else:
                    try:
                        pending = pending[sock.send(pending) :]
                    except (BrokenPipeError, ConnectionResetError):
                        answered = True
            if answered:
                break
            sent += len(frame)
        sock.setblocking(True)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return Answer(
            response.status, response.getheader("Content-Type", ""), response.read(), sent
        )
    finally:
        sock.close()


def replay(world: ServedWorld, bad_input: BadInput) -> tuple[Answer, ChunkedBody | None]:
    """Send a corpus case as its client, with its placeholders filled."""
    placeholders = {**world.child, "fresh_nhs_number": next(_fresh_nhs_numbers)}
    target = filled(bad_input.path, placeholders)
    if bad_input.query:
        pairs = filled(bad_input.query, placeholders)
        target += "?" + "&".join(
            f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs
        )
    headers = {
        "Accept": "application/fhir+json" if target.startswith("/fhir") else "application/json",
        **filled(bad_input.headers, placeholders),
    }
    if bad_input.client is not None:
        headers |= world.bearer(bad_input.client)
    body = request_body(bad_input, placeholders)
    answer = send(world.base, bad_input.method, target, headers, body)
    return answer, body if isinstance(body, ChunkedBody) else None


def assert_error_shape(bad_input: BadInput, answer: Answer) -> None:
    """An OperationOutcome on `/fhir` (with the offending element's expression, when the
    case names one); RFC 6749 error JSON on `/oauth2`."""
    try:
        document = json.loads(answer.body)
    except ValueError:
        pytest.fail(f"the answer is not JSON ({answer.content_type}): {answer.body[:200]!r}")
    if bad_input.path.startswith("/oauth2"):
        assert document.get("error") in OAUTH_ERRORS, document
        return
    assert answer.content_type.startswith("application/fhir+json"), answer.content_type
    assert document.get("resourceType") == "OperationOutcome", document
    issues = document.get("issue")
    assert issues, document
    assert all(
        issue.get("severity") and issue.get("code") and issue.get("diagnostics") for issue in issues
    ), issues
    if bad_input.expected_expression is not None:
        expressions = [expression for issue in issues for expression in issue.get("expression", [])]
        assert any(
            expression.startswith(bad_input.expected_expression) for expression in expressions
        ), f"no issue names {bad_input.expected_expression}: {issues}"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[path.stem for path in CORPUS_FILES])
def test_corpus_file_is_well_formed(path: Path) -> None:
    bad_input = load_bad_input(path)
    assert path.stem == f"{bad_input.expected_status}-{bad_input.name}"
    assert 400 <= bad_input.expected_status < 500
    assert bad_input.why and bad_input.method in ("GET", "POST", "PUT", "PATCH")
    assert bad_input.path.startswith(("/fhir/", "/oauth2/"))
    assert len(bad_input.body) <= 1
    if "generator" in bad_input.body:
        assert bad_input.body["generator"] in GENERATORS
    mentioned = json.dumps([bad_input.path, bad_input.query, bad_input.headers, bad_input.body])
    assert set(re.findall(r"\{([a-z_]+)\}", mentioned)) <= set(PLACEHOLDERS)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[path.stem for path in CORPUS_FILES])
def test_bad_input_is_refused_stores_nothing_and_server_stays_up(
    served: ServedWorld, path: Path
) -> None:
    bad_input = load_bad_input(path)
    if bad_input.client is not None:
        served.bearer(bad_input.client)  # a token fetched now is not the case's doing
    before = served.stored()

    answer, chunked = replay(served, bad_input)

    assert answer.status == bad_input.expected_status, (
        f"{bad_input.why}\nexpected {bad_input.expected_status}, "
        f"got {answer.status}: {answer.body[:500]!r}"
    )
    assert_error_shape(bad_input, answer)
    if chunked is not None:
        assert answer.sent < chunked.total, (
            "the server read the whole chunked body before answering: "
            "it must stop reading past its limit"
        )
    assert served.stored() == before
    health = requests.get(f"{served.base}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
