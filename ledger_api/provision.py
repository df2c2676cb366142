"""Bring a local ledger to a usable state: contracts, organisations with keys, API keys.

Used by ``ledger demo``, ``ledger bench`` and the tests, always on the devnet: organisations sign
with dev accounts and their HPKE keys are derived from fixed seeds, so a re-run against a persisted
devnet finds everything already in place. Their record-id keys are the published demo keys
(:func:`ledger_api.crypto.keystore.demo_record_id_key`), which a gateway outside demo mode refuses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ledger_api.admin.policy import Policy, apply, plan
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import Deployment, DeploymentStore, ensure_deployed
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.signers import LOG_WRITER_ID, SignerStore
from ledger_api.chain.transactor import Transactor
from ledger_api.crypto import hpke
from ledger_api.crypto.keystore import OrgKeystore, demo_record_id_key
from ledger_api.crypto.keystore_secret import master_secret
from ledger_api.index.apikeys import replace_key
from ledger_api.index.database import make_engine
from ledger_api.settings import Settings

ADMIN_ACCOUNT = 0
LOG_WRITER_ACCOUNT = 4


@dataclass(frozen=True, kw_only=True)
class DevOrganisation:
    org_id: str
    kind: str
    account: int
    """Dev account index of the organisation's signer."""
    communities: tuple[str, ...]


COMMUNITY_A = "330102001"
COMMUNITY_B = "330102002"
DEMO_ORGANISATIONS = (
    DevOrganisation(org_id="PS-XIHU-01", kind="police", account=1, communities=(COMMUNITY_A, COMMUNITY_B)),
    DevOrganisation(org_id="PM-LVCHENG-01", kind="property", account=2, communities=(COMMUNITY_A,)),
    DevOrganisation(org_id="CM-CUIYUAN-01", kind="committee", account=3, communities=(COMMUNITY_B,)),
)
DEMO_AUDITOR = DevOrganisation(org_id="AU-XIHU-01", kind="auditor", account=5, communities=())
"""The street office's auditor: access-log segments are sealed for it (its HPKE key from
:func:`demo_private_key`), and ``ledger audit verify`` on the devnet opens them with that key. Kept apart
from :data:`DEMO_ORGANISATIONS` (the departments that push and read, and get API keys)."""
DEMO_AUDITORS = (DEMO_AUDITOR,)


@dataclass(frozen=True, kw_only=True)
class Provisioned:
    deployment: Deployment
    deployed_now: bool
    api_keys: dict[str, str]
    actions: tuple[str, ...]


def demo_private_key(org_id: str) -> bytes:
    """A fixed X25519 HPKE private key per dev organisation (encoded with its KEM id)."""
    seed = hashlib.sha256(f"ledger-demo-hpke:{org_id}".encode()).digest()
    return hpke.encode_private_key(hpke.HpkeSuite.X25519, seed)


def provision(
    *,
    settings: Settings,
    organisations: Sequence[DevOrganisation] = DEMO_ORGANISATIONS,
    auditors: Sequence[DevOrganisation] = DEMO_AUDITORS,
    transactor: Transactor,
    issue_api_keys: bool = True,
) -> Provisioned:
    chain_id = transactor.chain_id
    admin = dev_account(ADMIN_ACCOUNT)
    deployment, reused = ensure_deployed(
        transactor=transactor,
        store=DeploymentStore(directory=settings.deployments_dir),
        admin=admin,
        log_writer=dev_account(LOG_WRITER_ACCOUNT).address,
    )
    secret = master_secret(settings, chain_id=chain_id)
    keystore = OrgKeystore.open(settings.keystore_dir, master_secret=secret, demo=True)
    signers = SignerStore(directory=settings.home / "signers", password=secret)
    enrolled = set(keystore.org_ids())
    known_signers = set(signers.org_ids())
    if LOG_WRITER_ID not in known_signers:
        signers.put(LOG_WRITER_ID, dev_account(LOG_WRITER_ACCOUNT))
    desired = []
    registered = {org.org_id: org for org in (*organisations, *auditors)}  # a caller may list an auditor too
    for org in registered.values():
        if org.org_id not in enrolled:
            keystore.import_record_id_key(org.org_id, demo_record_id_key(org.org_id))
            keystore.import_key(org.org_id, demo_private_key(org.org_id), key_index=0)
        if org.org_id not in known_signers:
            signers.put(org.org_id, dev_account(org.account))
        desired.append({
            "id": org.org_id,
            "kind": org.kind,
            "signer": dev_account(org.account).address,
            "communities": list(org.communities),
            "public_key": keystore.current(org.org_id)[1].hex(),
        })  # fmt: skip
    chain = LedgerChain(transactor=transactor, deployment=deployment)
    changes = plan(Policy.from_document({"organisations": desired}, source="provisioning"), chain)
    apply(changes, chain, admin, echo=lambda _line: None)
    api_keys: dict[str, str] = {}
    if issue_api_keys:
        engine = make_engine(settings.index_url)
        api_keys = {
            org.org_id: replace_key(engine, org_id=org.org_id, label="provisioned").token for org in organisations
        }
        engine.dispose()
    return Provisioned(
        deployment=deployment,
        deployed_now=not reused,
        api_keys=api_keys,
        actions=tuple(a.description for a in changes.actions),
    )
