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
status it checks, per cell: a read by any authenticated caller, allowed or refused, grew the access log
by one entry naming the caller and the record (a release, or a refusal saying why: DESIGN.md invariant
8), and no other cell appends; a refused answer carries none of the target's content; a refused push,
import or erasure changed nothing; a 404 is byte for byte the answer about a missing one.

Two more tests hold the read endpoint to what a refusal may tell (nothing a missing record would not,
unless the grant presented covers the record) and to the bounds of a break-glass read.
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
from ledger_api.access.ratelimit import RateLimit, RateLimiter
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
from tests.ledger_api.gateway.records import BREAK_GLASS, payload, sample_records
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
#: Break-glass reads per organisation and hour in this module (LEDGER_EMERGENCY_PER_HOUR).
EMERGENCY_PER_HOUR = 6

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
    settings = make_settings(
        tmp_path_factory.mktemp("authorisation-home"), devnet.rpc_url, emergency_per_hour=EMERGENCY_PER_HOUR
    )
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
            f"/v1/records/{target.record_id}", params=BREAK_GLASS, headers=ledger.auth(RESPONDER.org_id)
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
    # Invariants 4 and 8: a read appended exactly its entry, a release or a refusal; nothing else appends.
    grown = world.services.access_log.size - log_size
    read = operation == READ_OPERATION and CALLER_ORG[caller] is not None
    released = read and allows(outcome)
    if grown != int(read):
        problems.append(f"the access log grew by {grown} entries, expected {int(read)}")
    if released and grown == 1:
        access = answer.json()["access"]
        entry = world.services.access_log.entry(access["entry_index"])
        logged = (entry.accessor_org, entry.record_id, entry.request_id, entry.grant_id)
        wanted = (CALLER_ORG[caller], world.target.record_id, access["request_id"], world.grants.get(caller, 0))
        if logged != wanted:
            problems.append(f"the access entry says {logged}, expected {wanted}")
    elif read and grown == 1:
        problems.extend(_logged_refusal(world, caller, log_size, record_id=world.target.record_id))
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
    # A read of a missing record is a refused attempt like any other (logged, so it costs the same too).
    is_read = call.url.startswith("/v1/records/") and call.method == "GET" and call.url.count("/") == 3
    if world.services.access_log.size != log_size + int(is_read):
        problems.append(f"asking about a missing one appended {world.services.access_log.size - log_size} entries")
    elif is_read:
        problems.extend(_logged_refusal(world, caller, log_size, record_id=missing, refusal="not_found"))
    return problems


def _logged_refusal(
    world: World, caller: str, index: int, *, record_id: str, refusal: str | None = None, org: str | None = None
) -> list[str]:
    """Problems with access entry ``index`` as the refusal of ``caller``'s read of ``record_id``."""
    entry = world.services.access_log.entry(index)
    logged = (entry.kind, entry.accessor_org, entry.record_id)
    wanted = ("refusal", org or CALLER_ORG[caller], record_id)
    if logged != wanted or not entry.refusal or (refusal is not None and entry.refusal != refusal):
        return [f"the refusal entry says {logged} ({entry.refusal}), expected {wanted} ({refusal or 'any reason'})"]
    return []


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
    assert cells == len(expected) * len(CALLERS) == 140


# --- what a refusal tells, and the bounds of break-glass reads ----------------------------------------------


def _read_as(world: World, org: str, record_id: str, **params: Any) -> Response:
    return world.client.get(f"/v1/records/{record_id}", params=params, headers=world.ledger.auth(org))


def _like_a_missing_one(world: World, org: str, record_id: str, answer: Response, **params: Any) -> list[str]:
    """The answer is the 404 of a missing record, byte for byte, and both attempts were logged as refusals."""
    size = world.services.access_log.size
    twin = _read_as(world, org, MISSING_RECORD, **params)
    problems = []
    if answer.status_code != 404 or twin.status_code != 404:
        problems.append(f"not both 404: {answer.status_code} {answer.text[:200]} / {twin.status_code}")
    if twin.text.replace(MISSING_RECORD, record_id) != answer.text or twin.headers.get(
        "content-type"
    ) != answer.headers.get("content-type"):
        problems.append(f"answers unlike a missing one: {answer.text[:200]} vs {twin.text[:200]}")
    problems += _logged_refusal(world, "", size - 1, record_id=record_id, org=org)
    problems += _logged_refusal(world, "", size, record_id=MISSING_RECORD, refusal="not_found", org=org)
    return problems


def _owner_record_elsewhere(world: World) -> str:
    """A fresh record of the owner in the other community (outside the grants' and the responder's reach)."""
    document = world.factories["owner"].fresh()
    document["community_code"] = COMMUNITY_B
    world.push(document, POLICE)
    return str(document["record_id"])


def test_a_refused_read_tells_nothing_unless_the_grant_presented_covers_the_record(world: World) -> None:
    """No existence oracle (DESIGN.md invariant 8): a caller holding a grant from the owner learns nothing
    about records its grant does not cover; only a grant that covers the record lets a refusal say why."""
    elsewhere = _owner_record_elsewhere(world)
    grant = world.grants["grantee"]
    cases = {
        # The grantee's grant covers incidents of the target's community only.
        "out of the grant's scope": (COMMITTEE, elsewhere, {"purpose": "elderly_care", "grant": grant}, "OUT_OF_SCOPE"),
        "no grant named": (COMMITTEE, world.target.record_id, {"purpose": "elderly_care"}, "no_grant"),
        "another grantee's grant": (
            COMMITTEE, world.target.record_id, {"purpose": "elderly_care", "grant": world.grants["expired"]},
            "WRONG_GRANTEE",
        ),
        "an unknown grant": (
            COMMITTEE, world.target.record_id, {"purpose": "elderly_care", "grant": 10**9}, "UNKNOWN_GRANT",
        ),
    }  # fmt: skip
    problems = []
    for name, (org, record_id, params, why) in cases.items():
        size = world.services.access_log.size
        answer = _read_as(world, org, record_id, **params)
        problems += [f"{name}: {p}" for p in _like_a_missing_one(world, org, record_id, answer, **params)]
        entry = world.services.access_log.entry(size)
        if (entry.refusal, entry.grant_id, entry.purpose) != (why, params.get("grant", 0), params["purpose"]):
            problems.append(f"{name}: logged {(entry.refusal, entry.grant_id, entry.purpose)}, expected {why}")
    # The grant presented covers the record: the refusal may say why, and is logged all the same.
    size = world.services.access_log.size
    wrong_purpose = _read_as(world, COMMITTEE, world.target.record_id, purpose="investigation", grant=grant)
    assert wrong_purpose.status_code == 403, wrong_purpose.text
    assert "WRONG_PURPOSE" in wrong_purpose.json()["detail"]
    problems += _logged_refusal(world, "grantee", size, record_id=world.target.record_id, refusal="WRONG_PURPOSE")
    assert not problems, "\n".join(problems)


def _stated(reason_class: str, **changes: Any) -> dict[str, Any]:
    return {**BREAK_GLASS, "reason_class": reason_class, **changes}


def _subject_values(answer: Response) -> tuple[str, str | None]:
    subject = next(s for s in answer.json()["record"]["subjects"] if s.get("id_number"))
    return subject["id_number"], subject.get("phone")


def test_break_glass_reads_are_bounded_logged_and_told_to_the_owner(world: World) -> None:
    """DESIGN.md, Privacy: the reader's own communities, a stated reason and incident reference, a rate
    limit, identifiers masked unless the reason class needs them, the owner told at once."""
    target, log = world.target, world.services.access_log
    original = next(s for s in target.subjects if s.id_number)

    # No reason stated: a 422 naming each missing field, before the record is looked at; logged.
    size = log.size
    bare = _read_as(world, RESPONDER.org_id, target.record_id, purpose="emergency_response")
    assert bare.status_code == 422, bare.text
    assert [e["location"] for e in bare.json()["errors"]] == [
        "query/reason_class",
        "query/reason",
        "query/incident_ref",
    ]
    without_incident = {name: value for name, value in BREAK_GLASS.items() if name != "incident_ref"}
    partial = _read_as(world, RESPONDER.org_id, target.record_id, **without_incident)
    assert [e["location"] for e in partial.json()["errors"]] == ["query/incident_ref"]
    assert [(log.entry(i).refusal, log.entry(i).emergency) for i in (size, size + 1)] == [
        ("emergency_without_reason", True)] * 2  # fmt: skip

    # A reason class that needs no identifier: ID number and phone masked; the entry says what was shown.
    orderly = _read_as(world, RESPONDER.org_id, target.record_id, **_stated("public_order"))
    assert orderly.status_code == 200, orderly.text
    id_number, phone = _subject_values(orderly)
    assert id_number != original.id_number
    assert "*" in id_number
    assert original.phone is None or phone != original.phone
    entry = log.entry(orderly.json()["access"]["entry_index"])
    assert (entry.emergency, entry.reason_class, entry.reason, entry.incident_ref, entry.revealed) == (
        True, "public_order", BREAK_GLASS["reason"], BREAK_GLASS["incident_ref"], ())  # fmt: skip
    # A threat to life needs the ID number in clear.
    urgent = _read_as(world, RESPONDER.org_id, target.record_id, **_stated("life_threat"))
    assert _subject_values(urgent)[0] == original.id_number
    assert log.entry(urgent.json()["access"]["entry_index"]).revealed == ("id_number", "phone")

    # Only the communities the reader serves: anything else answers as a missing record does.
    elsewhere = _owner_record_elsewhere(world)
    size = log.size
    outside = _read_as(world, RESPONDER.org_id, elsewhere, **BREAK_GLASS)
    problems = _like_a_missing_one(world, RESPONDER.org_id, elsewhere, outside, **BREAK_GLASS)
    assert log.entry(size).refusal == "emergency_outside_communities"
    # A kind not allowed break-glass reads gets nothing either.
    problems += _like_a_missing_one(
        world, PROPERTY, target.record_id, _read_as(world, PROPERTY, target.record_id, **BREAK_GLASS), **BREAK_GLASS
    )
    assert not problems, "\n".join(problems)

    # The owner is told at once, on its feed (the entries are not anchored yet, nor need to be).
    feed = world.client.get("/v1/feed", params={"after": 0}, headers=world.ledger.auth(POLICE))
    told = [json.loads(line[6:]) for line in feed.text.splitlines() if line.startswith("data: ")]
    told = [event for event in told if "entry_index" in event]
    for answer in (orderly, urgent):
        request_id = answer.json()["access"]["request_id"]
        (event,) = [e for e in told if e["request_id"] == request_id]
        assert (event["accessor_org"], event["record_id"], event["incident_ref"]) == (
            RESPONDER.org_id, target.record_id, BREAK_GLASS["incident_ref"])  # fmt: skip
    assert "event: emergency-read" in feed.text
    others = world.client.get("/v1/feed", params={"after": 0}, headers=world.ledger.auth(COMMITTEE)).text
    assert "emergency-read" not in others  # told to the owner only

    # The rate limit: at most EMERGENCY_PER_HOUR an hour; beyond, 429 for any record, existing or not.
    limited = None
    for _ in range(EMERGENCY_PER_HOUR + 1):
        answer = _read_as(world, RESPONDER.org_id, target.record_id, **BREAK_GLASS)
        if answer.status_code == 429:
            limited = answer
            break
        assert answer.status_code == 200, answer.text
    assert limited is not None, "no 429 within the limit"
    assert int(limited.headers["retry-after"]) >= 1
    assert log.entry(log.size - 1).refusal == "emergency_rate_limited"
    assert _read_as(world, RESPONDER.org_id, MISSING_RECORD, **BREAK_GLASS).status_code == 429
    taken = [
        log.entry(i)
        for i in range(log.size)
        if log.entry(i).accessor_org == RESPONDER.org_id and log.entry(i).emergency
        and log.entry(i).refusal not in ("emergency_without_reason", "emergency_rate_limited")
    ]  # fmt: skip
    assert len(taken) >= EMERGENCY_PER_HOUR
    # The logged times, replayed through the same bucket, show every logged break-glass read within the limit.
    replay = RateLimiter(name="replay", limit=RateLimit.per_hour(EMERGENCY_PER_HOUR), clock=time.time)
    for entry in sorted(taken, key=lambda e: e.time):
        replay.take(RESPONDER.org_id, when=entry.time.timestamp())
