"""Who may call what on the gateway: every endpoint it serves × every kind of caller (DESIGN.md invariants 4, 6).

One devnet deployment and one gateway (in-process). The owner (police) pushes a target incident and
grants it for elderly care to four organisations: the grantee (valid grant), one whose grant expires a
few seconds later, one whose grant is revoked, and one that the admin then suspends on chain (its API
key was issued before). The property company holds no grant. A second police organisation makes an
emergency read of the target, for the review endpoint. Each cell then calls its endpoint about the
target as its caller; endpoints with side effects (push, import, erasure) get a fresh record or file
per cell.

The EXPECTED table is the specification (the notes under it explain the less obvious cells). The test
fails with the whole observed matrix and every mismatch: an unexpected allow, an unexpected deny, or a
deny with the wrong status. It also fails when an endpoint the app serves has no row. Besides the
status it checks, per cell: the access log grew by one entry naming the caller and the record for an
allowed read and not at all otherwise; a refused answer carries none of the target's content; a
refused push, import or erasure changed nothing.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session, col, func, select
from web3 import Web3

from adapters.canonical import CanonicalRecord
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.devnet import Devnet, dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.transactor import Transactor
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import RecordVersion
from ledger_api.provision import (
    ADMIN_ACCOUNT,
    COMMUNITY_A,
    COMMUNITY_B,
    DEMO_ORGANISATIONS,
    DevOrganisation,
    provision,
)
from tests.ledger_api.gateway.authorisation import (
    allows,
    classify,
    parse_table,
    published_operations,
    render,
    served_operations,
)
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, make_settings, wait_until
from tests.ledger_api.gateway.records import payload, sample_records
from tests.support.gateway_process import RecordFactory

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

EXPIRED = DevOrganisation(org_id="CM-EXPIRED-01", kind="committee", account=6, communities=(COMMUNITY_B,))
REVOKED = DevOrganisation(org_id="PM-REVOKED-01", kind="property", account=7, communities=(COMMUNITY_A,))
SUSPENDED = DevOrganisation(org_id="CM-SUSPENDED-01", kind="committee", account=8, communities=(COMMUNITY_B,))
RESPONDER = DevOrganisation(org_id="PS-BINJIANG-01", kind="police", account=9, communities=(COMMUNITY_A,))

#: Dev accounts 0-5 are taken (admin, the three departments, the log writer, the demo auditor).
CALLERS = ("owner", "grantee", "expired", "revoked", "other", "suspended", "anonymous")
CALLER_ORG: dict[str, str | None] = {
    "owner": POLICE,
    "grantee": COMMITTEE,
    "expired": EXPIRED.org_id,
    "revoked": REVOKED.org_id,
    "other": PROPERTY,
    "suspended": SUSPENDED.org_id,
    "anonymous": None,
}
OWNER_SIGNER = dev_account(1)  # the police's signer (DEMO_ORGANISATIONS)
#: The expiring grant's lifetime: long enough to be created, short enough to wait out.
EXPIRY_S = 3

# fmt: off
EXPECTED = """
operation                                | owner | grantee | expired | revoked | other | suspended | anonymous
GET /v1/health                           | 200   | 200     | 200     | 200     | 200   | 200       | 200
GET /v1/ready                            | 200   | 200     | 200     | 200     | 200   | 200       | 200
GET /v1/openapi.json                     | 200   | 200     | 200     | 200     | 200   | 200       | 200
GET /v1/docs                             | 200   | 200     | 200     | 200     | 200   | 200       | 200
GET /v1/schema/record                    | 200   | 200     | 200     | 200     | 200   | 200       | 200
GET /v1/me                               | 200   | 200     | 200     | 200     | 200   | 200       | 401
POST /v1/records                         | 202   | 202     | 202     | 202     | 202   | 403       | 401
GET /v1/records                          | 200+  | 200+    | 200-    | 200-    | 200-  | 200-      | 401
GET /v1/records/{record_id}              | 200   | 200     | 403     | 403     | 404   | 403       | 401
GET /v1/records/{record_id}/status       | 200   | 404     | 404     | 404     | 404   | 404       | 401
GET /v1/records/{record_id}/proof        | 200   | 200     | 404     | 404     | 404   | 404       | 401
DELETE /v1/records/{record_id}           | 200   | 404     | 404     | 404     | 404   | 404       | 401
POST /v1/import/{adapter}                | 200   | 200     | 200     | 200     | 200   | 403       | 401
POST /v1/subjects/blind-index            | 200   | 200     | 200     | 200     | 200   | 403       | 401
GET /v1/subjects/{blind_index}/records   | 200+  | 200+    | 200-    | 200-    | 200-  | 200-      | 401
GET /v1/access-log/heads                 | 200   | 200     | 200     | 200     | 200   | 200       | 401
GET /v1/access-log/entries/{index}/proof | 200   | 200     | 404     | 404     | 404   | 404       | 401
GET /v1/access-log/consistency           | 200   | 200     | 200     | 200     | 200   | 200       | 401
GET /v1/feed                             | 200+  | 200+    | 200-    | 200-    | 200-  | 200-      | 401
GET /v1/review/emergency-reads           | 200+  | 200-    | 200-    | 200-    | 200-  | 200-      | 401
GET /v1/overlap                          | 403   | 403     | 403     | 403     | 403   | 403       | 401
GET /v1/overlap/mine                     | 200   | 200     | 200     | 200     | 200   | 403       | 401
"""
# fmt: on
#: Notes on the cells:
#: - Liveness, readiness, the OpenAPI document, its docs page and the record schema are public.
#: - Every other endpoint needs an API key: 401 (with `WWW-Authenticate`) before anything else is looked at.
#: - A read names its grant (`?grant=`). A caller whose grant from the owner is expired, revoked, or who is
#:   suspended knows of the record: 403 naming why. A caller with no grant from the owner gets 404, exactly
#:   as for a missing record (ledger_api/records/reading.py).
#: - Listings, subject search and the feed answer 200 to any key but show only what the caller may see now:
#:   `200-` means the target is absent; a suspended organisation sees nothing.
#: - Status and erasure are the owner's: anyone else gets 404, as for a missing record (the routers' and
#:   ledger_api/records/erasure.py's documented choice, the grantee included). A proof follows visibility.
#: - An access-log entry is visible to its accessor (here the grantee) and the record's owner, no one else.
#:   Tree heads and consistency proofs are hashes public on chain anyway: any key.
#: - Emergency reads are reviewed by the owner of the record read (auditors and admins: all of them).
#: - A suspended organisation may not push or import (its signer cannot anchor on chain, so an
#:   acknowledged write could never be anchored, DESIGN.md invariant 5) nor use the consortium's
#:   blind-index key: 403. Its key still authenticates (`/v1/me` says who it is).
#: - The overlap matrix (every organisation's counts) is for auditor and admin organisations only: a department
#:   gets 403 and asks `/v1/overlap/mine`, counts about its own subjects (never a blind index); a suspended
#:   organisation gets 403 there too.

READ_OPERATION = "GET /v1/records/{record_id}"
MISSING_RECORD = "0" * 64
MISSING_ENTRY = "999999999"
#: Why a refused read is refused, as its problem detail says (the grantee may learn why; others learn nothing).
READ_REFUSALS = {"expired": "EXPIRED", "revoked": "REVOKED", "suspended": "not active on chain"}


@dataclass(frozen=True, kw_only=True)
class Call:
    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    subject: str | None = None
    """For `200+`/`200-` cells: the text whose presence in the answer means "shown"."""
    check: Callable[[Response], list[str]] | None = None
    """Cell-specific checks after the call (side effects, answer contents)."""
    names: str | None = None
    """The part of the URL that names what is asked about: a 404 must answer exactly as for a missing one."""


@dataclass(frozen=True, kw_only=True)
class World:
    client: TestClient
    ledger: Ledger
    services: GatewayServices
    target: CanonicalRecord
    grants: dict[str, int]
    entry_index: int
    emergency_request: str
    blind_index: str
    head_sizes: tuple[int, int]
    secrets: tuple[str, ...]
    """Content of the target that no refused answer may carry."""
    factories: dict[str, RecordFactory]
    cells: Counter[str] = field(default_factory=Counter)

    def headers(self, caller: str) -> dict[str, str]:
        org = CALLER_ORG[caller]
        return self.ledger.auth(org) if org is not None else {}

    def push(self, document: dict[str, Any], org: str) -> None:
        answer = self.client.post("/v1/records", json=document, headers=self.ledger.auth(org))
        assert answer.status_code == 202, answer.text

    def record_versions(self) -> int:
        with Session(self.services.engine) as session:
            return int(session.exec(select(func.count()).select_from(RecordVersion)).one())

    def shredded(self, record_id: str) -> bool:
        with Session(self.services.engine) as session:
            row = session.exec(select(RecordVersion).where(col(RecordVersion.record_id) == record_id)).one()
        return row.shredded_at is not None


def _chain(ledger: Ledger) -> LedgerChain:
    return LedgerChain(
        transactor=Transactor.from_url(ledger.settings.rpc_url), deployment=ledger.provisioned.deployment
    )


@pytest.fixture(scope="module")
def world(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("authorisation-home"), devnet.rpc_url)
    provisioned = provision(
        settings=settings,
        organisations=(*DEMO_ORGANISATIONS, EXPIRED, REVOKED, SUSPENDED, RESPONDER),
        transactor=Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url))),
    )
    ledger = Ledger(settings=settings, provisioned=provisioned)
    services = GatewayServices.from_settings(settings)
    with contextlib.closing(services), TestClient(create_app(services)) as client:
        target = next(
            r for r in sample_records("police.incidents", POLICE)[:30] if any(s.id_number for s in r.subjects)
        )
        subject = next(s for s in target.subjects if s.id_number)
        assert client.post("/v1/records", json=payload([target]), headers=ledger.auth(POLICE)).status_code == 202

        chain = _chain(ledger)
        now = chain.latest_timestamp()

        def grant(grantee: str, valid_until: int) -> int:
            spec = GrantSpec(
                owner_org=POLICE, grantee_org=grantee, purpose=Purpose.ELDERLY_CARE, valid_from=now - 10,
                valid_until=valid_until, record_types=("incident",), communities=(target.community_code,),
            )  # fmt: skip
            grant_id, _ = chain.create_grant(signer=OWNER_SIGNER, spec=spec)
            return grant_id

        expires_at = max(now, int(time.time())) + EXPIRY_S
        grants = {
            "grantee": grant(COMMITTEE, now + 3600),
            "expired": grant(EXPIRED.org_id, expires_at),
            "revoked": grant(REVOKED.org_id, now + 3600),
            "suspended": grant(SUSPENDED.org_id, now + 3600),
        }
        chain.revoke_grant(signer=OWNER_SIGNER, grant_id=grants["revoked"])
        chain.suspend_organisation(signer=dev_account(ADMIN_ACCOUNT), org_id=SUSPENDED.org_id)

        granted = client.get(
            f"/v1/records/{target.record_id}",
            params={"purpose": "elderly_care", "grant": grants["grantee"]},
            headers=ledger.auth(COMMITTEE),
        )
        assert granted.status_code == 200, granted.text
        emergency = client.get(
            f"/v1/records/{target.record_id}",
            params={"purpose": "emergency_response"},
            headers=ledger.auth(RESPONDER.org_id),
        )
        assert emergency.status_code == 200, emergency.text
        blind = client.post(
            "/v1/subjects/blind-index", json={"id_number": subject.id_number}, headers=ledger.auth(POLICE)
        )
        assert blind.status_code == 200, blind.text

        entry_index = granted.json()["access"]["entry_index"]
        auth = ledger.auth(POLICE)
        wait_until(lambda: client.get(f"/v1/access-log/entries/{entry_index}/proof", headers=auth).status_code == 200)
        wait_until(lambda: client.get(f"/v1/records/{target.record_id}/status", headers=auth).json()["state"]
                   == "anchored")  # fmt: skip
        heads = client.get("/v1/access-log/heads", headers=auth).json()["heads"]
        # Expiry is decided with the wall clock; suspension and revocation as the chain follower holds them.
        wait_until(lambda: time.time() >= expires_at + 1, timeout_s=EXPIRY_S + 30)
        wait_until(lambda: services.follower.is_active(SUSPENDED.org_id) is False)
        wait_until(lambda: (g := services.follower.grant(grants["revoked"])) is not None and g.revoked)

        secrets = tuple(
            value
            for value in (target.source.native_id, subject.id_number, target.location.text,
                          *(s.phone for s in target.subjects))
            if value
        )  # fmt: skip
        # The owner's own read shows each of them: the leak check looks for content the API really renders.
        shown = client.get(f"/v1/records/{target.record_id}", params={"purpose": "investigation"}, headers=auth).text
        assert all(value in shown or json.dumps(value)[1:-1] in shown for value in secrets), secrets
        factories = {
            caller: RecordFactory(
                templates=sample_records("police.incidents", org, limit=5),
                tag=f"authz-{caller}",
                rng=random.Random(caller),
            )
            for caller, org in CALLER_ORG.items()
            if org is not None
        }
        yield World(
            client=client, ledger=ledger, services=services, target=target, grants=grants, entry_index=entry_index,
            emergency_request=emergency.json()["access"]["request_id"], blind_index=blind.json()["blind_index"],
            head_sizes=(heads[0]["size"], heads[-1]["size"]), secrets=secrets, factories=factories,
        )  # fmt: skip


# --- the calls, one builder per operation ---------------------------------------------------------------------

Builder = Callable[[World, str], Call]


def _plain(method: str, url: str, **params: Any) -> Builder:
    return lambda _world, _caller: Call(method=method, url=url, params=params)


def _stores_iff_allowed(world: World, *, report: bool = False) -> Callable[[Response], list[str]]:
    before = world.record_versions()

    def check(answer: Response) -> list[str]:
        problems = []
        stored, wanted = world.record_versions() - before, int(allows(str(answer.status_code)))
        if stored != wanted:
            problems.append(f"{stored} record version(s) stored, expected {wanted}")
        if report and wanted and answer.json().get("valid") != 1:
            problems.append(f"the import report does not count the one valid row: {answer.text[:300]}")
        return problems

    return check


def _push(world: World, caller: str) -> Call:
    document = world.factories["owner" if caller == "anonymous" else caller].fresh()
    return Call(method="POST", url="/v1/records", json=document, check=_stores_iff_allowed(world))


def _import(world: World, caller: str) -> Call:
    world.cells["import"] += 1
    row = {**HAZARD_TEMPLATE, "reportNo": f"WG-900-{world.cells['import']:05d}"}
    return Call(
        method="POST", url="/v1/import/committee.hazard_reports",
        params={"community": COMMUNITY_A, "file_name": f"authz-{caller}.json"},
        content=json.dumps([row], ensure_ascii=False).encode(), check=_stores_iff_allowed(world, report=True),
    )  # fmt: skip


def _erase(world: World, caller: str) -> Call:
    document = world.factories["owner"].fresh()  # a fresh record of the owner per cell
    world.push(document, POLICE)
    record_id = document["record_id"]

    def check(answer: Response) -> list[str]:
        erased, wanted = world.shredded(record_id), allows(str(answer.status_code))
        return [] if erased == wanted else [f"record erased: {erased}, expected {wanted}"]

    return Call(method="DELETE", url=f"/v1/records/{record_id}", check=check, names=record_id)


def _read(world: World, caller: str) -> Call:
    if caller == "owner":
        params: dict[str, Any] = {"purpose": "investigation"}
    else:
        params = {"purpose": "elderly_care"}
        if caller in world.grants:
            params["grant"] = world.grants[caller]

    def check(answer: Response) -> list[str]:
        reason = READ_REFUSALS.get(caller)
        if reason is None or answer.status_code != 403 or reason in answer.json()["detail"]:
            return []
        return [f"refused without saying {reason!r}: {answer.text[:200]}"]

    return Call(
        method="GET", url=f"/v1/records/{world.target.record_id}", params=params, names=world.target.record_id,
        check=check,
    )  # fmt: skip


def _me(world: World, caller: str) -> Call:
    def check(answer: Response) -> list[str]:
        org = answer.json().get("org_id") if answer.status_code == 200 else CALLER_ORG[caller]
        return [] if org == CALLER_ORG[caller] else [f"/v1/me names {org}"]

    return Call(method="GET", url="/v1/me", check=check)


def _blind_index(world: World, caller: str) -> Call:
    subject = next(s for s in world.target.subjects if s.id_number)

    def check(answer: Response) -> list[str]:
        if answer.status_code != 200 or answer.json()["blind_index"] == world.blind_index:
            return []
        return [f"another blind index for the same ID number: {answer.text[:200]}"]

    return Call(method="POST", url="/v1/subjects/blind-index", json={"id_number": subject.id_number}, check=check)


def _about_target(method: str, template: str, **params: Any) -> Builder:
    return lambda world, _caller: Call(
        method=method, url=template.format(id=world.target.record_id), params=params, names=world.target.record_id
    )


def _shows_target(url: str, **params: Any) -> Builder:
    return lambda world, _caller: Call(
        method="GET", url=url.format(blind=world.blind_index), params=params, subject=world.target.record_id
    )


HAZARD_TEMPLATE: dict[str, Any] = {
    "reportNo": "WG-900-00000", "reportedAt": 1741651954000,
    "gridMember": {"name": "林海", "phone": "15635390121", "grid": "东湖社区第4网格"},
    "community": {"code": "330106002003", "name": "东湖社区"}, "location": "6幢2单元 楼道",
    "category": "消防通道占用", "description": "需物业处理", "photos": [], "status": "处理中",
}  # fmt: skip

BUILDERS: dict[str, Builder] = {
    "GET /v1/health": _plain("GET", "/v1/health"),
    "GET /v1/ready": _plain("GET", "/v1/ready"),
    "GET /v1/openapi.json": _plain("GET", "/v1/openapi.json"),
    "GET /v1/docs": _plain("GET", "/v1/docs"),
    "GET /v1/schema/record": _plain("GET", "/v1/schema/record"),
    "GET /v1/me": _me,
    "POST /v1/records": _push,
    "GET /v1/records": _shows_target("/v1/records", limit=1000),
    READ_OPERATION: _read,
    "GET /v1/records/{record_id}/status": _about_target("GET", "/v1/records/{id}/status"),
    "GET /v1/records/{record_id}/proof": _about_target("GET", "/v1/records/{id}/proof"),
    "DELETE /v1/records/{record_id}": _erase,
    "POST /v1/import/{adapter}": _import,
    "POST /v1/subjects/blind-index": _blind_index,
    "GET /v1/subjects/{blind_index}/records": _shows_target("/v1/subjects/{blind}/records"),
    "GET /v1/access-log/heads": _plain("GET", "/v1/access-log/heads"),
    "GET /v1/access-log/entries/{index}/proof": lambda world, _caller: Call(
        method="GET", url=f"/v1/access-log/entries/{world.entry_index}/proof", names=str(world.entry_index)
    ),
    "GET /v1/access-log/consistency": lambda world, _caller: Call(
        method="GET",
        url="/v1/access-log/consistency",
        params={"from_size": world.head_sizes[0], "to_size": world.head_sizes[1]},
    ),
    "GET /v1/feed": _shows_target("/v1/feed", after=0),
    "GET /v1/overlap": _plain("GET", "/v1/overlap"),
    "GET /v1/overlap/mine": lambda world, _caller: Call(
        method="GET",
        url="/v1/overlap/mine",
        check=lambda answer: (
            [f"a blind index in the answer: {answer.text[:200]}"] if world.blind_index in answer.text else []
        ),
    ),
    "GET /v1/review/emergency-reads": lambda world, _caller: Call(
        method="GET", url="/v1/review/emergency-reads", params={"limit": 1000}, subject=world.emergency_request
    ),
}


# --- running the cells ---------------------------------------------------------------------------------------


def _outcome(answer: Response, call: Call) -> str:
    status = str(answer.status_code)
    if call.subject is not None and status == "200":
        return "200+" if call.subject in answer.text else "200-"
    return status


def _cell_checks(world: World, operation: str, caller: str, call: Call, answer: Response, log_size: int) -> list[str]:
    outcome = _outcome(answer, call)
    problems: list[str] = []
    # Invariant 4: a read that released the record appended exactly its entry; nothing else appends.
    grown = world.services.access_log.size - log_size
    released = operation == READ_OPERATION and allows(outcome)
    if grown != int(released):
        problems.append(f"the access log grew by {grown} entries, expected {int(released)}")
    if released and grown == 1:
        access = answer.json()["access"]
        entry = world.services.access_log.entry(access["entry_index"])
        logged = (entry.accessor_org, entry.record_id, entry.request_id, entry.grant_id)
        wanted = (CALLER_ORG[caller], world.target.record_id, access["request_id"], world.grants.get(caller, 0))
        if logged != wanted:
            problems.append(f"the access entry says {logged}, expected {wanted}")
    # A refused answer, or one hiding the target, carries none of its content.
    if not allows(outcome) or outcome == "200-":
        text = answer.text  # the secrets as they are, or as JSON escapes them (\uXXXX)
        leaked = [s for s in world.secrets if s in text or json.dumps(s)[1:-1] in text]
        if leaked:
            problems.append(f"the answer carries the target's content {leaked}")
    if outcome == "401" and answer.headers.get("www-authenticate") != 'Bearer realm="ledger"':
        problems.append("a 401 without WWW-Authenticate")
    if not allows(outcome) and not answer.headers.get("content-type", "").startswith("application/problem+json"):
        problems.append(f"an error answer that is not problem details: {answer.headers.get('content-type')}")
    if call.check is not None:
        problems.extend(call.check(answer))
    if outcome == "404" and call.names is not None:
        problems.extend(_answers_like_a_missing_one(world, caller, call, answer))
    return problems


def _answers_like_a_missing_one(world: World, caller: str, call: Call, answer: Response) -> list[str]:
    """A 404 about something the caller may not know of is the very answer for something that does not exist."""
    assert call.names is not None
    missing = MISSING_RECORD if len(call.names) == 64 else MISSING_ENTRY
    log_size = world.services.access_log.size
    twin = world.client.request(
        call.method, call.url.replace(call.names, missing), params=call.params, json=call.json, content=call.content,
        headers=world.headers(caller),
    )  # fmt: skip
    problems = []
    if twin.status_code != 404 or twin.text.replace(missing, call.names) != answer.text:
        problems.append(f"answers unlike a missing one: {answer.text[:200]} vs {twin.status_code} {twin.text[:200]}")
    if world.services.access_log.size != log_size:
        problems.append("asking about a missing one appended to the access log")
    return problems


def test_every_endpoint_answers_every_caller_as_the_table_says(world: World) -> None:
    expected = parse_table(EXPECTED, CALLERS)
    app: Any = world.client.app
    served = served_operations(app)
    published = published_operations(app.openapi())
    assert published <= served, f"published but not served: {sorted(published - served)}"
    assert served == set(expected), (
        f"endpoints without a row: {sorted(served - set(expected))}; rows for no endpoint: "
        f"{sorted(set(expected) - served)}"
    )
    assert set(BUILDERS) == set(expected)

    observed: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    kinds: Counter[str] = Counter()
    for operation, row in expected.items():
        for caller in CALLERS:
            call = BUILDERS[operation](world, caller)
            log_size = world.services.access_log.size
            answer = world.client.request(
                call.method, call.url, params=call.params, json=call.json, content=call.content,
                headers=world.headers(caller),
            )  # fmt: skip
            outcome = _outcome(answer, call)
            observed.setdefault(operation, {})[caller] = outcome
            where = f"{operation} as {caller}"
            kind = classify(row[caller], outcome)
            if kind is not None:
                kinds[kind] += 1
                problems.append(f"{kind}: {where}: expected {row[caller]}, got {outcome}: {answer.text[:300]}")
            problems.extend(f"{where}: {p}" for p in _cell_checks(world, operation, caller, call, answer, log_size))

    cells = sum(len(row) for row in observed.values())
    summary = (
        f"{cells} cells ({len(observed)} endpoints × {len(CALLERS)} callers): {kinds['unexpected allow']} unexpected "
        f"allow, {kinds['unexpected deny']} unexpected deny, {kinds['wrong status']} wrong status, "
        f"{len(problems) - sum(kinds.values())} other problem(s)"
    )
    print(f"\nauthorisation matrix: {summary}")
    assert not problems, f"{summary}\n{render(observed, CALLERS)}\n" + "\n".join(problems)
    assert cells == len(expected) * len(CALLERS) == 154
