"""A small but complete ledger history on the devnet, for the auditor's verifier to check.

Three organisations push records (two police records get a second version); the police grant the
committee elderly-care reads of incidents and later revoke it; the property company grants the police
an investigation grant that expires soon; the police read their own record, read under the grant and
make an emergency read of a committee hazard report. Then everything is anchored and the gateway stops,
so storage and chain hold still while the tests audit them.

The first batch is anchored well (more than the verifier's back-dating tolerance) before the first tree
head, so that a read claiming a block from before that batch is provably back-dated.

With ``admin_actions``: an organisation admin also grants the committee fire-safety reads of the property
company's access events on its behalf, the committee reads one under it, and at the end the admin
proposes a new signer for the property company, which the company's signer accepts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, col, select
from web3 import Web3

from adapters.canonical import CanonicalRecord
from ledger_api.audit.collect import AuditorKey, collect_evidence
from ledger_api.audit.evidence import Evidence
from ledger_api.audit.verifier import VerifyOptions
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from ledger_api.chain.tree_heads import TreeHeadReader
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AnchorBatch, RecordVersion
from ledger_api.provision import ADMIN_ACCOUNT, COMMUNITY_B, DEMO_AUDITOR, demo_private_key, provision
from ledger_api.settings import Settings
from ledger_api.storage.local import LocalBlobStore
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, make_settings, wait_until
from tests.ledger_api.gateway.records import BREAK_GLASS, in_community, payload, sample_records

#: The property company's signer (dev account 2) and the one the admin proposes in its place.
PROPERTY_SIGNER = 2
NEW_PROPERTY_SIGNER = 7
AUDITOR_KEY = AuditorKey(org_id=DEMO_AUDITOR.org_id, key_index=0, private_key=demo_private_key(DEMO_AUDITOR.org_id))


@dataclass(frozen=True, kw_only=True)
class Scenario:
    settings: Settings
    deployment: Deployment
    deployment_file: Path
    rpc_url: str
    record_versions: int
    entries: int
    """Every entry of the access log: the reads and the refusals."""
    emergency_entries: tuple[int, ...]
    refusal_entries: tuple[int, ...] = ()
    """The refused attempts logged (DESIGN.md invariant 8): the read under the revoked grant."""
    incident: CanonicalRecord
    """The police incident the committee read under the grant that was later revoked (two versions)."""
    revoked_grant: int
    revoked_block: int
    expiring_grant: int
    id_numbers: int
    """Record versions whose subjects carry ID numbers (their manifests list blind indexes)."""
    erased_record: str
    admin: AdminActions | None = None
    """What the admin did (``build_scenario(admin_actions=True)`` only)."""

    @property
    def blob_dir(self) -> Path:
        return Path(self.settings.blob_store_url.removeprefix("file://"))


@dataclass(frozen=True, kw_only=True)
class AdminActions:
    admin: str
    """The admin's address."""
    grant_id: int
    grant_block: int
    grant_tx: str
    read_entry: int
    """The committee's read under the admin-made grant."""
    org_id: str
    old_signer: str
    new_signer: str
    proposal_block: int
    proposal_tx: str
    acceptance_block: int
    acceptance_tx: str


def collect_scenario_evidence(scenario: Scenario) -> Evidence:
    """The evidence of the scenario's ledger, from its chain and its storage."""
    rpc = JsonRpc(url=scenario.rpc_url)
    try:
        return collect_evidence(
            rpc=rpc, deployment=scenario.deployment, store=LocalBlobStore(root=scenario.blob_dir), auditor=AUDITOR_KEY
        )
    finally:
        rpc.close()


def _push(client: TestClient, ledger: Ledger, org: str, records: list[CanonicalRecord]) -> int:
    answer = client.post("/v1/records", json=payload(records), headers=ledger.auth(org))
    assert answer.status_code == 202, answer.text
    outcomes = [r["status"] for r in answer.json()["records"]]
    assert all(s in ("created", "new_version") for s in outcomes), outcomes
    return len(outcomes)


def _read(client: TestClient, ledger: Ledger, org: str, record_id: str, **params: object) -> dict[str, object]:
    answer = client.get(f"/v1/records/{record_id}", params=params, headers=ledger.auth(org))
    assert answer.status_code == 200, answer.text
    access = answer.json()["access"]
    assert isinstance(access, dict)
    return access


def _all_anchored(services: GatewayServices, reader: TreeHeadReader) -> bool:
    with Session(services.engine) as session:
        waiting = session.scalar(
            select(func.count())
            .select_from(RecordVersion)
            .join(AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True)
            .where((col(RecordVersion.batch_id).is_(None)) | (col(AnchorBatch.state) != "anchored"))
        )
    head = reader.latest_head()
    return waiting == 0 and (head.size if head else 0) == services.access_log.size


def _admin_grant(
    chain: LedgerChain, client: TestClient, ledger: Ledger, record: CanonicalRecord
) -> tuple[int, dict[str, object], int]:
    """An admin grants the committee fire-safety reads of the property company's access events, and the
    committee reads ``record`` under it: (grant id, receipt, entry index of the read)."""
    now = chain.latest_timestamp()
    grant_id, receipt = chain.create_grant(signer=dev_account(ADMIN_ACCOUNT), spec=GrantSpec(
        owner_org=PROPERTY, grantee_org=COMMITTEE, purpose=Purpose.FIRE_SAFETY, valid_from=now - 10,
        valid_until=now + 3600, record_types=("access_event",)))  # fmt: skip
    access = _read(client, ledger, COMMITTEE, record.record_id, purpose="fire_safety", grant=grant_id)
    return grant_id, dict(receipt), int(str(access["entry_index"]))


def _change_property_signer(chain: LedgerChain) -> tuple[dict[str, object], dict[str, object]]:
    """The admin proposes a new signer for the property company; the company's signer accepts."""
    proposal = chain.propose_signer_change(
        signer=dev_account(ADMIN_ACCOUNT), org_id=PROPERTY, new_signer=dev_account(NEW_PROPERTY_SIGNER).address
    )
    acceptance = chain.accept_signer_change(signer=dev_account(PROPERTY_SIGNER), org_id=PROPERTY)
    return dict(proposal), dict(acceptance)


def _hex(value: object) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, bytes) else str(value)


def build_scenario(home: Path, rpc_url: str, *, admin_actions: bool = False) -> Scenario:
    settings = make_settings(home, rpc_url)
    transactor = Transactor(w3=Web3(Web3.HTTPProvider(rpc_url)))
    provisioned = provision(settings=settings, transactor=transactor)
    ledger = Ledger(settings=settings, provisioned=provisioned)
    deployment = provisioned.deployment
    chain = LedgerChain(transactor=transactor, deployment=deployment)
    reader = TreeHeadReader(rpc=JsonRpc(url=rpc_url), address=deployment.address("AccessLogAnchors"))
    services = GatewayServices.from_settings(settings)
    with TestClient(create_app(services)) as client:
        incidents = [r for r in sample_records("police.incidents", POLICE)[:20] if any(s.id_number for s in r.subjects)]
        incidents = incidents[:6]
        versions = _push(client, ledger, POLICE, incidents)
        wait_until(lambda: _all_anchored(services, reader), timeout_s=60)
        # Chain time passes between the first batch and the first tree head (see the module docstring).
        time.sleep(VerifyOptions().backdate_tolerance_s + 2)
        revised = [
            r.model_copy(update={"location": r.location.model_copy(update={"text": f"复核地址 {i}"})})
            for i, r in enumerate(incidents[:2])
        ]
        versions += _push(client, ledger, POLICE, revised)
        access_events = sample_records("property.access_events", PROPERTY)[:4]
        versions += _push(client, ledger, PROPERTY, access_events)
        hazards = in_community(sample_records("committee.hazard_reports", COMMITTEE)[:3])
        versions += _push(client, ledger, COMMITTEE, hazards)

        now = chain.latest_timestamp()
        incident = incidents[0]
        care, _ = chain.create_grant(signer=dev_account(1), spec=GrantSpec(
            owner_org=POLICE, grantee_org=COMMITTEE, purpose=Purpose.ELDERLY_CARE, valid_from=now - 10,
            valid_until=now + 3600, record_types=("incident",), communities=(incident.community_code,)))  # fmt: skip
        expiring, _ = chain.create_grant(signer=dev_account(2), spec=GrantSpec(
            owner_org=PROPERTY, grantee_org=POLICE, purpose=Purpose.INVESTIGATION, valid_from=now - 10,
            valid_until=now + 600, record_types=("access_event",)))  # fmt: skip
        emergency: list[int] = []
        _read(client, ledger, COMMITTEE, incident.record_id, purpose="elderly_care", grant=care)
        _read(client, ledger, POLICE, incidents[1].record_id, purpose="investigation")  # the owner
        wait_until(lambda: _all_anchored(services, reader), timeout_s=60)  # a first tree head
        erased = hazards[2].record_id  # crypto-shredded by its owner: its anchored blob is gone by design
        assert client.delete(f"/v1/records/{erased}", headers=ledger.auth(COMMITTEE)).status_code == 200
        _read(client, ledger, POLICE, access_events[0].record_id, purpose="investigation", grant=expiring)
        access = _read(client, ledger, POLICE, hazards[0].record_id, **BREAK_GLASS)
        emergency.append(int(str(access["entry_index"])))
        _read(client, ledger, COMMITTEE, incident.record_id, purpose="elderly_care", grant=care, version=1)
        admin_grant = _admin_grant(chain, client, ledger, access_events[1]) if admin_actions else None
        revoked = chain.revoke_grant(signer=dev_account(1), grant_id=care)
        refused = client.get(
            f"/v1/records/{incident.record_id}",
            params={"purpose": "elderly_care", "grant": care},
            headers=ledger.auth(COMMITTEE),
        )
        assert refused.status_code == 403  # and logged as a refusal, before the answer
        refusal_entry = services.access_log.size - 1
        assert services.access_log.entry(refusal_entry).refusal == "REVOKED"
        wait_until(lambda: _all_anchored(services, reader), timeout_s=60)
        entries = services.access_log.size
        # The police then serves only the other community: a break-glass read of a record of the first one,
        # decided after this, would be outside its reach (the must-fail bank forges one).
        chain.set_communities(signer=dev_account(ADMIN_ACCOUNT), org_id=POLICE, communities=(COMMUNITY_B,))
        # Last, so that nothing the gateway does afterwards needs the property company's old signer.
        signer_change = _change_property_signer(chain) if admin_actions else None
    # The gateway is stopped: storage, index and chain hold still from here on.
    id_numbers = sum(
        1 for r in [*incidents, *revised, *access_events, *hazards] if any(s.id_number for s in r.subjects)
    )
    deployment_file = settings.deployments_dir / f"{deployment.chain_id}.json"
    assert json.loads(deployment_file.read_text())["addresses"] == deployment.addresses
    return Scenario(
        settings=settings,
        deployment=deployment,
        deployment_file=deployment_file,
        rpc_url=rpc_url,
        record_versions=versions,
        entries=entries,
        emergency_entries=tuple(emergency),
        refusal_entries=(refusal_entry,),
        incident=incident,
        revoked_grant=care,
        revoked_block=int(revoked["blockNumber"]),
        expiring_grant=expiring,
        id_numbers=id_numbers,
        erased_record=erased,
        admin=_admin_actions(admin_grant, signer_change),
    )


def _admin_actions(
    grant: tuple[int, dict[str, object], int] | None, change: tuple[dict[str, object], dict[str, object]] | None
) -> AdminActions | None:
    if grant is None or change is None:
        return None
    grant_id, receipt, entry = grant
    proposal, acceptance = change
    return AdminActions(
        admin=dev_account(ADMIN_ACCOUNT).address, grant_id=grant_id, grant_block=int(str(receipt["blockNumber"])),
        grant_tx=_hex(receipt["transactionHash"]), read_entry=entry, org_id=PROPERTY,
        old_signer=dev_account(PROPERTY_SIGNER).address, new_signer=dev_account(NEW_PROPERTY_SIGNER).address,
        proposal_block=int(str(proposal["blockNumber"])), proposal_tx=_hex(proposal["transactionHash"]),
        acceptance_block=int(str(acceptance["blockNumber"])), acceptance_tx=_hex(acceptance["transactionHash"]),
    )  # fmt: skip
