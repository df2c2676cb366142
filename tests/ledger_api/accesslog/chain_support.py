"""A fresh ledger deployment with an auditor organisation, for the access-log devnet tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from ledger_api.accesslog import AccessLog, TreeHeadAnchorer, TreeHeadSettings, TreeHeadWriter, auditor_recipients
from ledger_api.chain.anchor_writer import BroadcastOutcome
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from ledger_api.crypto import hpke
from ledger_api.provision import DEMO_ORGANISATIONS, LOG_WRITER_ACCOUNT, DevOrganisation, demo_private_key, provision
from ledger_api.settings import Settings
from ledger_api.storage.local import LocalBlobStore

AUDITOR = DevOrganisation(org_id="AU-XIHU-01", kind="auditor", account=5, communities=())
GATEWAY_ID = "gateway"


@dataclass
class Chain:
    """A fresh deployment, the log writer's RPC writer, the auditor's and the gateway's keys."""

    rpc: JsonRpc
    ledger: LedgerChain
    contract: str
    auditors: dict[str, tuple[int, bytes]]
    gateway_private: bytes
    gateway_public: bytes

    def writer(self, cls: type[TreeHeadWriter] = TreeHeadWriter) -> TreeHeadWriter:
        return cls(
            rpc=self.rpc, signer=dev_account(LOG_WRITER_ACCOUNT), address=self.contract, chain_id=self.rpc.chain_id()
        )

    def anchorer(
        self, log: AccessLog, blobs: LocalBlobStore, *, writer: TreeHeadWriter | None = None, **settings: Any
    ) -> TreeHeadAnchorer:
        options: dict[str, Any] = {"max_wait_s": 0.0, "poll_s": 0.01, "backoff_max_s": 0.2, **settings}
        return TreeHeadAnchorer(
            log=log,
            blobs=blobs,
            writer=writer or self.writer(),
            gateway_key=(GATEWAY_ID, 0, self.gateway_public),
            auditors=lambda: auditor_recipients(self.ledger),
            settings=TreeHeadSettings(**options),
        )

    def anchor_directly(self, size: int, root: bytes) -> None:
        """What another copy of a transaction (or another writer) does: anchor (size, root) now."""
        writer = self.writer()
        _mined, pending = writer.nonces()
        tx = writer.sign(TreeHeadWriter.anchor_calldata(size, root), nonce=pending)
        assert writer.broadcast(tx) is BroadcastOutcome.ACCEPTED
        # anvil mines on its own task: under load the receipt can lag the broadcast by a moment.
        deadline = time.monotonic() + 30
        while (receipt := writer.receipt(tx.tx_hash)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receipt is not None
        assert int(str(receipt["status"]), 16) == 1


def make_chain(rpc_url: str, home: Path) -> Chain:
    """Provision a new deployment into ``home`` (demo organisations plus an auditor) on ``rpc_url``."""
    settings = Settings(home=home, rpc_url=rpc_url)
    transactor = Transactor(w3=Web3(Web3.HTTPProvider(rpc_url)))
    provisioned = provision(
        settings=settings, organisations=(*DEMO_ORGANISATIONS, AUDITOR), transactor=transactor, issue_api_keys=False
    )
    ledger = LedgerChain(transactor=transactor, deployment=provisioned.deployment)
    auditors = auditor_recipients(ledger)
    assert set(auditors) == {AUDITOR.org_id}  # only the auditor organisation, with its key from the registry
    assert auditors[AUDITOR.org_id][1] == hpke.public_key_from_private(demo_private_key(AUDITOR.org_id))
    private, public = hpke.generate_keypair()
    return Chain(
        rpc=JsonRpc(url=rpc_url),
        ledger=ledger,
        contract=provisioned.deployment.address("AccessLogAnchors"),
        auditors=auditors,
        gateway_private=private,
        gateway_public=public,
    )
