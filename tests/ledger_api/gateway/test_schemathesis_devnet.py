"""Schemathesis over the published OpenAPI, in-process, against a provisioned ledger on the devnet.

Two runs over every operation of ``/v1/openapi.json``:

* authenticated (one organisation's API key): no 5xx, and every answer conforms to what the document
  says (status, content type, headers, body schema), schema-valid requests are accepted (where the
  schema can say what valid is: no 4xx but 401, 403, 404, 409, 410 and 429, :data:`POSITIVE_STATUSES`)
  and invalid ones rejected;
* unauthenticated (no ``Authorization`` header, a well-formed but unknown key, and whatever
  credentials schemathesis makes up): every operation that needs a key answers 401, always.

The public surface is asserted explicitly (:data:`PUBLIC`), so adding a public route is a conscious act.
:data:`PUSH_ODDITIES` keeps the pushes that answered 500 (or killed the process) as regression cases.

The schema is loaded once at import time, from an app whose services are never touched (the document
does not depend on them); every request goes to the real gateway (``app=`` on each call), and
:func:`test_the_fuzzed_document_is_the_one_the_gateway_publishes` checks that both documents are equal.
(``schemathesis.pytest.from_fixture`` would load it from a fixture instead, but with pytest 9.2 it
fails on ``Function._nodeid``, which pytest no longer has.)

Bounded for CI: at most :data:`MAX_EXAMPLES` generated cases per operation and run (plus schemathesis'
deterministic coverage cases), no deadline, derandomized with a fixed seed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from starlette.routing import Route

from adapters import available_adapters
from adapters.canonical import derive_record_id, normalise_id_number
from ledger_api.crypto.keystore import demo_record_id_key
from ledger_api.gateway.app import create_app
from ledger_api.gateway.problems import PROBLEM_JSON
from ledger_api.gateway.services import GatewayServices
from ledger_api.settings import Settings
from tests.ledger_api.gateway.conftest import POLICE, Ledger
from tests.ledger_api.gateway.records import BREAK_GLASS, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.xdist_group("devnet")]

MAX_EXAMPLES = 50
SEED = 20250101

# Everything that answers without an API key: (method, path template).
PUBLIC = {
    ("GET", "/v1/health"),
    ("GET", "/v1/ready"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/schema/record"),
    ("GET", "/v1/docs"),
}

AUTHENTICATED_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
]
UNAUTHENTICATED_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Operations whose valid inputs the schema cannot describe, so "schema-valid" does not mean "must be accepted".
NOT_DESCRIBED_BY_THE_SCHEMA = {
    "/v1/import/{adapter}",  # the body is an opaque file: any bytes are schema-valid, few are a readable export
}
#: What a schema-valid request may be answered (positive-data conformance, stricter than schemathesis' default,
#: which also lets 3xx and 5xx pass): success, or a refusal the request's form cannot avoid (no key, no right, no
#: such record, a conflict with the current state, an erased record, a rate limit). Never 400 or 422.
POSITIVE_STATUSES = ["2xx", "401", "403", "404", "409", "410", "429"]
UNKNOWN_KEY = "Bearer lk_000000000000_" + "A" * 43
VALID_ID_NUMBER = "11010519491231002X"

# Statuses these operations must answer at least once with the key: the write path and the lookups really ran.
MUST_SUCCEED = {"POST /v1/records": 202, "GET /v1/records/{record_id}/status": 200, "GET /v1/me": 200}
FAILED = ("(an example failed)", 0)


class _DocumentOnly:
    """Just enough of GatewayServices for create_app: serving the OpenAPI document needs no backend."""

    settings = Settings()

    def stop(self) -> None:
        pass


def _document_app() -> FastAPI:
    return create_app(_DocumentOnly(), run_worker=False)  # type: ignore[arg-type]


schema = schemathesis.openapi.from_asgi(
    "/v1/openapi.json",
    _document_app(),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES}},
        }
    ),
)
fuzz_settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # `answers` counts across all examples of an operation, on purpose
    ],
)


@dataclass(frozen=True, kw_only=True)
class Gateway:
    app: FastAPI
    auth: dict[str, str]
    known_records: tuple[str, ...]


@pytest.fixture(scope="module")
def gateway(ledger_home: Ledger) -> Iterator[Gateway]:
    services = GatewayServices.from_settings(ledger_home.settings)
    # A few real records, so that status lookups are not all misses.
    seeded = sample_records("police.incidents", POLICE, limit=5)
    services.ingest.push(org_id=POLICE, records=seeded)
    app = create_app(services)
    yield Gateway(app=app, auth=ledger_home.auth(POLICE), known_records=tuple(r.record_id for r in seeded))
    # Schemathesis starts the app's lifespan (the anchoring worker) on the first call and keeps it.
    schemathesis_asgi.shutdown_lifespans()
    services.close()


@pytest.fixture
def answers(request: pytest.FixtureRequest) -> Iterator[Counter[tuple[str, int]]]:
    """(operation, status) -> count over all examples of one test item; checked once they all ran.

    Checked here, per item, rather than in a later test: items may run on different xdist workers.
    """
    counted: Counter[tuple[str, int]] = Counter()
    yield counted
    if counted[FAILED]:
        return  # the test failed and says why; counting would only add noise
    per_operation = Counter(operation for operation, _ in counted.elements())
    print(f"\n{request.node.name}: {dict(sorted(counted.items()))}")
    assert not [key for key in counted if key[1] >= 500], counted
    for operation, total in per_operation.items():  # generation really happened
        assert total >= (MAX_EXAMPLES // 2 if _has_inputs(operation) else 1), (operation, total)
    if request.function.__name__ == "test_authenticated":
        for operation, status in MUST_SUCCEED.items():
            if operation in per_operation:
                assert counted[operation, status] > 0, (operation, counted)


def _has_inputs(label: str) -> bool:
    method, path = label.split(" ", 1)
    operation = schema.raw_schema["paths"][path][method.lower()]
    return bool(operation.get("parameters") or operation.get("requestBody"))


@contextmanager
def _noting_failure(answers: Counter[tuple[str, int]]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        answers[FAILED] += 1
        raise


def _client(gateway: Gateway) -> TestClient:
    # Not entered as a context manager: that would run the lifespan again and, on exit, stop the anchoring
    # worker the schemathesis transport started.
    return TestClient(gateway.app)


def _valid_id_number(value: str) -> bool:
    try:
        normalise_id_number(value)
    except ValueError:
        return False
    return True


def _choice(key: str, options: tuple[str, ...]) -> str:
    return options[hashlib.sha256(key.encode()).digest()[0] % len(options)]


def _make_semantically_valid(case: Any, gateway: Gateway) -> None:
    """Turn some schema-valid cases into ones the gateway must accept, to fuzz the write path too.

    The document cannot say that ``record_id`` (when not null) is the HMAC of owner, type and native id under
    the owner's record-id key (the provisioned demo key here), or that the owner is the caller: a schema-valid
    push is otherwise almost always (rightly) refused with 422.
    """
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    route = case.operation.path
    if route == "/v1/records" and isinstance(case.body, dict):
        records = case.body.get("records", [case.body]) if set(case.body) == {"records"} else [case.body]
        for record in records:
            record["owner_org"] = POLICE
            native_id = record["source"]["native_id"]
            record["record_id"] = derive_record_id(demo_record_id_key(POLICE), POLICE, record["record_type"], native_id)
            # Nor the index's limits on community codes (VARCHAR(32), no NUL), which ingest enforces.
            record["community_code"] = record["community_code"].replace("\x00", "")[:32] or "0"
            for subject in record.get("subjects", []):
                # Nor can it say that an ID number carries a valid birth date and GB 11643 check character.
                if subject.get("id_number") and not _valid_id_number(subject["id_number"]):
                    subject["id_number"] = VALID_ID_NUMBER
    elif route == "/v1/subjects/blind-index" and isinstance(case.body, dict):
        # The schema says "a non-empty string"; it cannot say "a valid GB 11643 check character".
        if "id_number" in case.body and not _valid_id_number(case.body["id_number"]):
            case.body["id_number"] = VALID_ID_NUMBER
    elif route == "/v1/records/{record_id}" and isinstance(case.query, dict):
        # Nor that an emergency read naming no grant states its reason class, reason and incident (the 422
        # naming them is asserted in test_authorisation_matrix_devnet).
        if case.query.get("purpose") == "emergency_response" and case.query.get("grant") is None:
            for name, value in BREAK_GLASS.items():
                case.query.setdefault(name, value)
    elif route == "/v1/records/{record_id}/status":
        record_id = case.path_parameters["record_id"]
        if record_id[0] in "01234567":
            case.path_parameters["record_id"] = _choice(record_id, gateway.known_records)
    elif route == "/v1/import/{adapter}":
        adapter = case.path_parameters["adapter"]
        if adapter[0] in "abcdefghijklm":
            case.path_parameters["adapter"] = _choice(adapter, tuple(sorted(available_adapters())))


def _call_and_validate(
    case: Any, gateway: Gateway, answers: Counter[tuple[str, int]], headers: dict[str, str], checks: list[Any]
) -> Any:
    answer = case.call(app=gateway.app, headers=headers)
    answers[case.operation.label, answer.status_code] += 1
    # The checks' own probes (e.g. ignored_auth) must reach the gateway too, not the document's app.
    case.validate_response(answer, checks=checks, headers=headers, transport_kwargs={"app": gateway.app})
    return answer


# A parameter even for one value: with pytest 9.2, schemathesis gives the items of an unparametrized test one
# node id (`test_authenticated`, without the operation), and pytest-xdist then runs only one of them.
@pytest.mark.parametrize("credentials", ["api-key"])
@schema.parametrize()
@fuzz_settings
def test_authenticated(case: Any, gateway: Gateway, answers: Counter[tuple[str, int]], credentials: str) -> None:
    _make_semantically_valid(case, gateway)
    checks = AUTHENTICATED_CHECKS
    if case.operation.path in NOT_DESCRIBED_BY_THE_SCHEMA:
        checks = [check for check in checks if check is not positive_data_acceptance]
    with _noting_failure(answers):
        _call_and_validate(case, gateway, answers, gateway.auth, checks)


@pytest.mark.parametrize("credentials", ["none", "unknown-key", "generated"])
@schema.parametrize()
@fuzz_settings
def test_unauthenticated(case: Any, gateway: Gateway, answers: Counter[tuple[str, int]], credentials: str) -> None:
    headers: dict[str, str] = {}
    if credentials != "generated":
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if credentials == "unknown-key":
        headers["Authorization"] = UNKNOWN_KEY
    with _noting_failure(answers):
        answer = _call_and_validate(case, gateway, answers, headers, UNAUTHENTICATED_CHECKS)
        if case.method.upper() != case.operation.method.upper():
            # Schemathesis also tries methods the path does not have: those must not exist, key or not.
            assert answer.status_code == 405, f"{case.method} {case.operation.path} answered {answer.status_code}"
            # ... and the answer names every method the path has (RFC 9110 §15.5.6), not one route's.
            documented = {method.upper() for method in schema.raw_schema["paths"][case.operation.path]}
            assert set(", ".join(answer.headers["allow"]).split(", ")) == documented, answer.headers["allow"]
        elif (case.method.upper(), case.operation.path) not in PUBLIC:
            assert answer.status_code == 401, f"{case.operation.label} answered {answer.status_code} without a key"
            assert answer.headers["content-type"] == [PROBLEM_JSON]
            assert answer.headers["www-authenticate"][0].startswith("Bearer")


def test_the_public_surface_is_exactly_the_expected_one(gateway: Gateway) -> None:
    """Every route, documented or not, probed without a key: only PUBLIC answers anything but 401."""
    document = gateway.app.openapi()
    examples = defaultdict(lambda: "0" * 64, adapter="police.incidents")  # any well-formed path parameter
    routes = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    # The document and its UI are plain routes of their own, outside the document.
    routes |= {
        (method, route.path)
        for route in gateway.app.routes
        if isinstance(route, Route) and not isinstance(route, APIRoute)
        for method in route.methods or ()
        if method != "HEAD"
    }
    client = _client(gateway)
    answering = set()
    for method, path in routes:
        answer = client.request(method, path.format_map(examples), params={"community": "1"})
        assert answer.status_code < 500, (method, path, answer.status_code)
        if answer.status_code != 401:
            answering.add((method, path))
    assert answering == PUBLIC
    # The document says the same: exactly the operations that need a key declare a security requirement.
    declared_open = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if not operation.get("security")
    }
    assert declared_open == {op for op in PUBLIC if op[1] in document["paths"]}


def test_the_fuzzed_document_is_the_one_the_gateway_publishes(gateway: Gateway) -> None:
    assert _client(gateway).get("/v1/openapi.json").json() == schema.raw_schema


def _record_json(*, attribute: bytes = b"", **changes: Any) -> bytes:
    """A valid record of the caller as JSON, with ``changes`` applied and a raw ``attribute`` spliced in."""
    record = sample_records("police.incidents", POLICE, limit=1)[0].to_json_dict()
    record.update(changes)
    body = json.dumps(record).encode()
    return body.replace(b'"attributes": {', b'"attributes": {' + attribute + b", ", 1) if attribute else body


# Bodies that answered 500 or killed the process before the fixes (pass: 422 problem details).
PUSH_ODDITIES: dict[str, Callable[[], bytes]] = {
    "not-utf8": lambda: b'{"records": [{"record_id": "\xff\xfe"}]}',
    "nan": lambda: _record_json(attribute=b'"x": NaN'),
    "infinity": lambda: _record_json(attribute=b'"x": -Infinity'),
    "float-overflow": lambda: _record_json(attribute=b'"x": 1e999'),
    "huge-int": lambda: _record_json(attribute=b'"x": ' + b"9" * 5000),
    "lone-surrogate": lambda: _record_json(attribute=b'"x": "\\ud800"'),
    "deep-nesting": lambda: b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # was a segfault
    "year-1-east": lambda: _record_json(occurred_at="0001-01-01T00:00:00+09:00"),
    "year-9999-west": lambda: _record_json(occurred_at="9999-12-31T23:59:59-05:00"),
    "year-1-in-utc": lambda: _record_json(occurred_at="0001-01-01T07:00:00+08:00"),
    "bad-id-number": lambda: _record_json(subjects=[{"role": "x", "id_number": "110101199003070000"}]),
}


@pytest.mark.parametrize("oddity", PUSH_ODDITIES)
def test_odd_pushes_are_refused_as_problems(gateway: Gateway, oddity: str) -> None:
    answer = _client(gateway).post(
        "/v1/records", content=PUSH_ODDITIES[oddity](), headers={**gateway.auth, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    if oddity.startswith(("year-", "bad-")):  # well-formed JSON: refused for the right reason, by field
        assert answer.json()["errors"], answer.text
