"""Everything the gateway runs on, built once from settings: index, blobs, keys, chain, worker."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from ledger_api.anchoring.worker import AnchoringSettings, AnchoringWorker
from ledger_api.chain.anchor_writer import AnchorWriter
from ledger_api.chain.deploy import Deployment, DeploymentStore
from ledger_api.chain.devnet import DEVNET_CHAIN_ID
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.signers import SignerStore
from ledger_api.crypto.keystore import DEMO_MASTER_SECRET, OrgKeystore, require_real_secret
from ledger_api.index.database import make_engine
from ledger_api.records.ingest import IngestService
from ledger_api.settings import Settings
from ledger_api.storage import BlobStore, S3BlobStore, blob_store_from_settings

log = logging.getLogger(__name__)


def master_secret(settings: Settings, *, chain_id: int) -> str:
    """The keystore secret; the public demo placeholder only on the devnet or with LEDGER_DEMO=1."""
    demo = settings.demo or chain_id == DEVNET_CHAIN_ID
    secret = settings.master_secret.get_secret_value() if settings.master_secret else None
    if secret is None and demo:
        return DEMO_MASTER_SECRET
    return require_real_secret(secret, demo=demo)


@dataclass(kw_only=True)
class GatewayServices:
    settings: Settings
    engine: Engine
    blobs: BlobStore
    keystore: OrgKeystore
    signers: SignerStore
    ingest: IngestService
    rpc: JsonRpc
    deployment: Deployment
    worker: AnchoringWorker
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayServices:
        rpc = JsonRpc(url=settings.rpc_url)
        chain_id = rpc.chain_id()
        deployment = DeploymentStore(directory=settings.deployments_dir).require(chain_id)
        secret = master_secret(settings, chain_id=chain_id)
        demo = settings.demo or chain_id == DEVNET_CHAIN_ID
        engine = make_engine(settings.index_url)
        blobs = blob_store_from_settings(settings.blob_store_url)
        if isinstance(blobs, S3BlobStore):
            # As the local store creates its directory, the gateway creates its bucket if missing: a fresh
            # deployment needs no manual step, and a bucket that is neither reachable nor creatable fails the
            # start-up instead of every push (StorageError).
            blobs.ensure_bucket()
        keystore = OrgKeystore.open(settings.keystore_dir, master_secret=secret, demo=demo)
        signers = SignerStore(directory=settings.home / "signers", password=secret)
        writers = {}
        for org_id in signers.org_ids():
            account = signers.get(org_id)
            if account is not None:
                writers[org_id] = AnchorWriter(
                    rpc=rpc,
                    signer=account,
                    owner_org=org_id,
                    records_address=deployment.address("RecordAnchors"),
                    chain_id=chain_id,
                    gas_pricing=settings.gas_pricing,
                )
        worker = AnchoringWorker(
            engine=engine,
            blobs=blobs,
            writers=writers,
            settings=AnchoringSettings(
                batch_max=settings.anchor_batch_max,
                max_wait_s=settings.anchor_max_wait_s,
                confirmations=settings.confirmations,
            ),
        )
        return cls(
            settings=settings,
            engine=engine,
            blobs=blobs,
            keystore=keystore,
            signers=signers,
            ingest=IngestService(engine=engine, blobs=blobs, keystore=keystore),
            rpc=rpc,
            deployment=deployment,
            worker=worker,
        )

    def start(self) -> None:
        """Start the anchoring worker (again, after a stop)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.worker.run, args=(self._stop,), name="anchoring", daemon=True)
            self._thread.start()

    def anchoring_health(self) -> str:
        """ "ok …" while the worker thread runs; its error count and last error either way."""
        thread = self._thread
        errors = f"{self.worker.errors} error(s)" + (
            f", last: {self.worker.last_error}" if self.worker.last_error else ""
        )
        if thread is None:
            return f"ok (not started in this process; {errors})"
        return f"ok (running; {errors})" if thread.is_alive() else f"unavailable: worker stopped ({errors})"

    def stop(self) -> None:
        """Stop the anchoring worker; the services stay usable."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.rpc.close()
        self.engine.dispose()
