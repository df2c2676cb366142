"""The one table of problem details: what a client gets back for each error family, whoever raised it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapters.errors import AdapterError, UnknownAdapterError
from ledger_api.chain.errors import ChainViewBehind
from ledger_api.errors import ConfigurationError, LedgerError
from ledger_api.gateway.problems import PROBLEM_BASE, PROBLEM_JSON, PROBLEMS, Unauthenticated, install_problem_handlers
from ledger_api.records.erasure import ErasureNotAllowed
from ledger_api.records.ingest import IngestError, OrganisationNotEnrolled, VersionConflict
from ledger_api.records.reading import ReadRefused, RecordErased, RecordNotVisible


def answer_to(error: Exception, *, query: str = "") -> tuple[int, dict[str, object], dict[str, str]]:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/thing")
    def thing() -> None:
        raise error

    response = TestClient(app, raise_server_exceptions=False).get(f"/v1/thing{query}")
    assert response.headers["content-type"] == PROBLEM_JSON
    return response.status_code, response.json(), dict(response.headers)


@pytest.mark.parametrize(
    ("error", "status", "slug", "title"),
    [
        (RecordNotVisible("no record r1"), 404, "not-found", "Not found"),
        (ErasureNotAllowed("no record r1"), 404, "not-found", "Not found"),
        (ReadRefused("grant 7 does not cover this read: EXPIRED"), 403, "forbidden", "Not allowed"),
        (RecordErased("record r1 version 1 was erased"), 410, "gone", "Gone"),
        (
            OrganisationNotEnrolled("organisation X has no keys at this gateway"),
            503,
            "unavailable",
            "Service unavailable",
        ),
        (VersionConflict("a concurrent push created the same record version; retry"), 409, "conflict", "Conflict"),
        (UnknownAdapterError("nope.nope", ["police.incidents"]), 404, "not-found", "Not found"),
        (ConfigurationError("no keystore"), 503, "upstream-error", "Ledger backend error"),
        (LedgerError("the chain node is down"), 503, "upstream-error", "Ledger backend error"),
    ],
)
def test_each_domain_error_has_one_answer(error: Exception, status: int, slug: str, title: str) -> None:
    got_status, body, _ = answer_to(error)
    assert got_status == status
    assert body == {
        "type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": str(error), "instance": "/v1/thing",
    }  # fmt: skip


def test_rejected_records_carry_their_per_record_errors() -> None:
    errors = [{"index": 0, "location": "occurred_at", "message": "needs a UTC offset"}]
    status, body, _ = answer_to(IngestError("1 of 1 record(s) rejected; nothing was stored", errors=errors))
    assert (status, body["type"], body["title"], body["errors"]) == (
        422, PROBLEM_BASE + "invalid-record", "Invalid record", errors
    )  # fmt: skip


def test_an_adapter_error_names_the_uploaded_file() -> None:
    status, body, _ = answer_to(AdapterError("missing required column(s): 警情编号"), query="?file_name=jq.csv")
    assert (status, body["type"], body["detail"]) == (
        422, PROBLEM_BASE + "invalid-record", "jq.csv: missing required column(s): 警情编号"
    )  # fmt: skip
    assert answer_to(AdapterError("not JSON"))[1]["detail"] == "upload: not JSON"


def test_401_tells_the_client_how_to_authenticate() -> None:
    status, body, headers = answer_to(Unauthenticated("the API key is unknown or revoked"))
    assert (status, body["title"]) == (401, "Authentication required")
    assert headers["www-authenticate"] == 'Bearer realm="ledger"'


def test_the_table_covers_every_domain_error_family() -> None:
    # The app registers the handler for the table's roots: every domain error, and every adapter error.
    roots = {cls for cls in PROBLEMS if not any(issubclass(cls, other) for other in PROBLEMS if other is not cls)}
    assert roots == {LedgerError, AdapterError}


def test_a_lagging_chain_view_is_its_own_503() -> None:
    error = ChainViewBehind("the chain follower's view (block 7) ...", lag_s=9.0, max_lag_s=3.0, head=7)
    status, body, _ = answer_to(error)
    assert (status, body["type"], body["title"], body["detail"]) == (
        503, PROBLEM_BASE + "chain-view-behind", "Chain view behind the node", str(error)
    )  # fmt: skip


def test_a_405_allows_every_method_of_the_path_not_only_the_first_route() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/things/{thing}")
    def get_thing(thing: str) -> None: ...

    @app.delete("/v1/things/{thing}")
    def delete_thing(thing: str) -> None: ...

    @app.get("/v1/other")
    def other() -> None: ...

    answer = TestClient(app).put("/v1/things/t1")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["allow"] == "DELETE, GET"
