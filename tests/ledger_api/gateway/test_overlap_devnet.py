"""``GET /v1/overlap`` and ``GET /v1/overlap/mine`` on a real devnet: the three departments push exports built
to overlap; the auditor sees the matrix, a department only its own shares and the grants that cover them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.transactor import Transactor
from ledger_api.cli.demo_data import overlap_exports, overlap_person
from ledger_api.index.apikeys import replace_key
from ledger_api.index.models import SubjectLink
from ledger_api.provision import COMMUNITY_A, COMMUNITY_B, DEMO_AUDITOR
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, wait_until
from tests.ledger_api.gateway.records import payload

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


@pytest.fixture(scope="module")
def pushed(client: TestClient, ledger_home: Ledger) -> dict[str, str]:
    """Push the three built exports, wait for their anchors; the API keys, the auditor's included."""
    last: dict[str, str] = {}
    for export in overlap_exports():
        _report, records = export.read()
        answer = client.post("/v1/records", json=payload(records), headers=ledger_home.auth(export.owner_org))
        assert answer.status_code == 202, answer.text
        last[export.owner_org] = answer.json()["records"][-1]["record_id"]  # assigned by the owner's gateway
    for org, record_id in last.items():
        wait_until(
            lambda org=org, record_id=record_id: (
                client.get(f"/v1/records/{record_id}/status", headers=ledger_home.auth(org)).json()["state"]
                == "anchored"
            )
        )
    services = client.app.state.services  # type: ignore[attr-defined]
    keys = {org: ledger_home.provisioned.api_keys[org] for org in (POLICE, PROPERTY, COMMITTEE)}
    keys[DEMO_AUDITOR.org_id] = replace_key(services.engine, org_id=DEMO_AUDITOR.org_id, label="overlap test").token
    return keys


def get(client: TestClient, keys: dict[str, str], org: str, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {keys[org]}"})


def pair(document: dict[str, Any], a: str, b: str, kind: str, community: str | None = None) -> dict[str, Any]:
    a, b = sorted((a, b))
    return next(
        p for p in document["pairs"] if (p["org_a"], p["org_b"], p["kind"], p["community"]) == (a, b, kind, community)
    )


def test_the_auditor_sees_the_matrix_with_exact_counts_and_small_cells_suppressed(
    client: TestClient, pushed: dict[str, str]
) -> None:
    answer = get(client, pushed, DEMO_AUDITOR.org_id, "/v1/overlap")
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["min_cell"] == 5
    people = pair(document, COMMITTEE, POLICE, "id_number")
    assert (people["a_subjects"]["count"], people["b_subjects"]["count"], people["both"]["count"]) == (60, 44, 36)
    assert (people["share_of_a"]["pct"], people["share_of_b"]["pct"]) == (60.0, 81.8)
    assert pair(document, COMMITTEE, PROPERTY, "address")["both"]["count"] == 30
    assert pair(document, PROPERTY, POLICE, "address")["both"]["count"] == 13
    small = pair(document, PROPERTY, POLICE, "address", COMMUNITY_A)["both"]
    assert small == {"count": None, "suppressed": True, "reason": "small", "shown_as": "< 5"}
    beside = pair(document, PROPERTY, POLICE, "address", COMMUNITY_B)
    assert beside["both"]["reason"] == "complementary"
    assert beside["share_of_a"] == {"pct": None, "suppressed": True}
    with Session(client.app.state.services.engine) as session:  # type: ignore[attr-defined]
        indexes = set(session.exec(select(SubjectLink.blind_index)).all())
    assert not any(index in answer.text for index in indexes)
    assert not any(overlap_person(n)[0] in answer.text for n in range(60))


@pytest.mark.parametrize("org", [POLICE, PROPERTY, COMMITTEE])
def test_a_department_is_refused_the_matrix_with_a_problem(
    client: TestClient, pushed: dict[str, str], org: str
) -> None:
    answer = get(client, pushed, org, "/v1/overlap")
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("/forbidden")
    assert "/v1/overlap/mine" in answer.json()["detail"]
    assert "pairs" not in answer.text


def test_a_department_sees_its_shares_and_which_grant_covers_them_today(
    client: TestClient, ledger_home: Ledger, pushed: dict[str, str]
) -> None:
    before = get(client, pushed, COMMITTEE, "/v1/overlap/mine").json()
    assert before["subjects"] == {"id_number": 60, "address": 60}
    police = next(o for o in before["others"] if (o["org_id"], o["kind"]) == (POLICE, "id_number"))
    assert (police["held"]["count"], police["share_of_mine"]["pct"], police["covered_today"]) == (36, 60.0, False)
    assert {e["owner_org"] for e in before["ask_for"]} == {POLICE, PROPERTY}

    chain = LedgerChain(
        transactor=Transactor.from_url(ledger_home.settings.rpc_url), deployment=ledger_home.provisioned.deployment
    )
    now = chain.latest_timestamp()
    grant_id, _ = chain.create_grant(signer=dev_account(1), spec=GrantSpec(
        owner_org=POLICE, grantee_org=COMMITTEE, purpose=Purpose.ELDERLY_CARE, valid_from=now - 10,
        valid_until=now + 3600, record_types=("incident",), communities=(COMMUNITY_B,)))  # fmt: skip

    def mine() -> dict[str, Any]:
        answer: dict[str, Any] = get(client, pushed, COMMITTEE, "/v1/overlap/mine").json()
        return answer

    def police_people(document: dict[str, Any]) -> dict[str, Any]:
        return next(o for o in document["others"] if (o["org_id"], o["kind"]) == (POLICE, "id_number"))

    wait_until(lambda: police_people(mine())["covered_today"])
    granted = police_people(mine())
    assert granted["grants"] == [grant_id]
    assert (granted["covered_by_grants"]["count"], granted["not_covered"]["count"]) == (30, 6)
    asks = {e["owner_org"]: e for e in mine()["ask_for"]}
    assert asks[POLICE]["communities"] == [COMMUNITY_A]  # residents 50-55 were met in A: not in the grant

    chain.revoke_grant(signer=dev_account(1), grant_id=grant_id)
    wait_until(lambda: not police_people(mine())["covered_today"])
    assert police_people(mine())["covered_by_grants"]["count"] == 0

    other = get(client, pushed, PROPERTY, "/v1/overlap/mine").json()
    committee = next(o for o in other["others"] if (o["org_id"], o["kind"]) == (COMMITTEE, "address"))
    assert committee["held"]["count"] == 30
