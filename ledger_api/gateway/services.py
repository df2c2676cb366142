"""Everything the gateway runs on, built once from settings: index, blobs, keys, chain, worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from ledger_api.access.ratelimit import RateLimit, RateLimiter
from ledger_api.accesslog import AccessLog, TreeHeadAnchorer, TreeHeadSettings
from ledger_api.accesslog.guard import AnchorerLiveness, ReleaseGuard
from ledger_api.anchoring.worker import AnchoringSettings, AnchoringWorker
from ledger_api.chain.anchor_writer import AnchorWriter
from ledger_api.chain.deploy import Deployment, DeploymentStore
from ledger_api.chain.encoding import OrganisationKind
from ledger_api.chain.follower import ChainFollower
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.signers import LOG_WRITER_ID, SignerStore
from ledger_api.chain.tree_heads import TreeHeadWriter
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.crypto.keystore_secret import master_secret
from ledger_api.errors import LedgerError
from ledger_api.index.database import make_engine
from ledger_api.records.ingest import IngestService
from ledger_api.records.reading import ReadService
from ledger_api.records.staging import StagingSweep
from ledger_api.settings import Settings
from ledger_api.storage import BlobStore, S3BlobStore, blob_store_from_settings

log = logging.getLogger(__name__)


class AnchoringStopped(LedgerError):
    """The anchoring worker thread of this gateway has died: acknowledged pushes would wait forever."""


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
    follower: ChainFollower
    access_log: AccessLog
    tree_heads: TreeHeadAnchorer | None
    reader: ReadService
    """Anchors the access log's tree heads; None when the gateway holds no log-writer key."""
    blind_index_limiter: RateLimiter
    anchorer_liveness: AnchorerLiveness
    staging: StagingSweep
    """Promotes or discards what crashed pushes left staged: once at start, then periodically."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayServices:
        rpc = JsonRpc(url=settings.rpc_url)
        chain_id = rpc.chain_id()
        deployment = DeploymentStore(directory=settings.deployments_dir).require(chain_id)
        secret = master_secret(settings, chain_id=chain_id)
        demo = settings.demo_mode
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
            if org_id.startswith("@"):
                continue  # the gateway's own signers (the access-log writer), not organisations
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
                confirmations=settings.confirmations_required,
            ),
        )
        follower = ChainFollower(rpc=rpc, deployment=deployment, log_chunk=settings.log_range)
        access_log = AccessLog(engine)
        tree_heads = _tree_head_anchorer(
            settings=settings, rpc=rpc, chain_id=chain_id, deployment=deployment, blobs=blobs,
            keystore=keystore, signers=signers, follower=follower, access_log=access_log,
        )  # fmt: skip
        liveness = AnchorerLiveness(has_writer=tree_heads is not None)
        guard = ReleaseGuard(
            anchorer_problem=liveness.problem,
            oldest_unanchored_at=tree_heads.oldest_unanchored_at if tree_heads is not None else lambda: None,
            max_backlog_s=settings.access_log_max_backlog_s,
        )
        return cls(
            settings=settings,
            engine=engine,
            blobs=blobs,
            keystore=keystore,
            signers=signers,
            ingest=IngestService(engine=engine, blobs=blobs, keystore=keystore, on_stored=worker.wake),
            rpc=rpc,
            deployment=deployment,
            worker=worker,
            follower=follower,
            access_log=access_log,
            reader=ReadService(
                engine=engine, blobs=blobs, keystore=keystore, follower=follower, access_log=access_log,
                release_guard=guard.check, emergency_limit=RateLimit.per_hour(settings.emergency_per_hour),
            ),
            anchorer_liveness=liveness,
            blind_index_limiter=RateLimiter(
                name="blind-index look-ups",
                limit=RateLimit(per_minute=settings.blind_index_per_minute, burst=settings.blind_index_burst),
            ),
            tree_heads=tree_heads,
            staging=StagingSweep(
                engine=engine, blobs=blobs, grace_s=settings.staging_grace_s, interval_s=settings.staging_sweep_s
            ),
        )  # fmt: skip

    def start(self) -> None:
        """Start the background work (again, after a stop): record anchoring, tree heads, the chain follower."""
        if self._threads:
            return
        self._stop.clear()
        # Before serving: a push that died between its commit and its promotion is promoted now, so the
        # anchoring worker and auditors find its blob in the shared area.
        try:
            self.staging.sweep()
        except LedgerError as exc:  # storage unreachable now: reads find staged blobs; the next sweep retries
            log.warning("staging sweep at start-up failed: %s", exc)
        targets: list[tuple[str, Callable[[threading.Event], None]]] = [("anchoring", self.worker.run)]
        if self.tree_heads is not None:
            targets.append(("tree-heads", self.tree_heads.run))
        targets.append(("staging-sweep", self.staging.run))
        for name, target in targets:
            thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
            if name == "tree-heads":
                self.anchorer_liveness.watch(thread)
        self.follower.start(poll_s=0.2)

    def require_anchoring_healthy(self) -> None:
        """Raise :class:`AnchoringStopped` when the anchoring worker was started here and has died."""
        thread = self._threads[0] if self._threads else None
        if thread is not None and not thread.is_alive():
            last = f"; last error: {self.worker.last_error}" if self.worker.last_error else ""
            raise AnchoringStopped(f"the anchoring worker stopped after {self.worker.errors} error(s){last}")

    def stop(self) -> None:
        """Stop the background work; the services stay usable."""
        self._stop.set()
        self.anchorer_liveness.forget()
        self.worker.wake()  # out of its idle wait
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self.follower.stop()

    def close(self) -> None:
        self.stop()
        self.rpc.close()
        self.engine.dispose()


#: Id under which the gateway keeps its own HPKE key (never an organisation id: those cannot start with "@").
GATEWAY_KEY_ID = "@gateway"


def _tree_head_anchorer(
    *,
    settings: Settings,
    rpc: JsonRpc,
    chain_id: int,
    deployment: Deployment,
    blobs: BlobStore,
    keystore: OrgKeystore,
    signers: SignerStore,
    follower: ChainFollower,
    access_log: AccessLog,
) -> TreeHeadAnchorer | None:
    log_writer = signers.get(LOG_WRITER_ID)
    if log_writer is None:
        log.warning("no access-log writer key (%s): tree heads are not anchored by this gateway", LOG_WRITER_ID)
        return None
    if GATEWAY_KEY_ID not in keystore.org_ids():
        keystore.generate(GATEWAY_KEY_ID)
    key_index, public_key = keystore.current(GATEWAY_KEY_ID)

    def auditors() -> dict[str, tuple[int, bytes]]:
        # Segments are sealed for every active auditor organisation the chain knows now.
        return {
            org.org_id: (len(org.public_keys) - 1, org.public_keys[-1])
            for org in follower.organisations()
            if org.kind is OrganisationKind.AUDITOR and not org.suspended and org.public_keys
        }

    writer = TreeHeadWriter(
        rpc=rpc,
        signer=log_writer,
        address=deployment.address("AccessLogAnchors"),
        chain_id=chain_id,
        gas_pricing=settings.gas_pricing,
    )
    return TreeHeadAnchorer(
        log=access_log,
        blobs=blobs,
        writer=writer,
        gateway_key=(GATEWAY_KEY_ID, key_index, public_key),
        auditors=auditors,
        settings=TreeHeadSettings(max_wait_s=settings.anchor_max_wait_s, confirmations=settings.confirmations_required),
    )
