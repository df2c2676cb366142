"""``ledger reindex``: rebuild the gateway's index from chain events and blob storage alone.

The index is only an index (DESIGN.md invariant 3). Batches come from ``BatchAnchored`` events; each
batch's manifest (named by the event's ``manifestHash``) lists its leaves; each leaf's blob is opened
with the owner's key to recover the metadata the index serves (type, community, time, blind
indexes). Record blobs that no anchored batch lists are acknowledged pushes still waiting for their
anchor: they come back as pending and the worker anchors them. API keys are gateway configuration,
not ledger data, and are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.canonical import CanonicalRecord
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.events import iter_events
from ledger_api.chain.rpc import JsonRpc
from ledger_api.crypto.envelope import open_record, parse_blob
from ledger_api.crypto.errors import EnvelopeError
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.errors import LedgerError
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink
from ledger_api.records.ingest import subject_links
from ledger_api.records.leaves import BatchManifest
from ledger_api.storage.base import BlobStore


@dataclass(frozen=True, kw_only=True)
class ReindexReport:
    batches: int
    anchored_records: int
    pending_records: int
    skipped: tuple[str, ...]
    """Blobs or batches that could not be used, each with the reason."""


def reindex(
    *,
    engine: Engine,
    blobs: BlobStore,
    keystore: OrgKeystore,
    rpc: JsonRpc,
    deployment: Deployment,
    progress: Callable[[str], object] = lambda _m: None,
) -> ReindexReport:
    skipped: list[str] = []
    consortium_key = keystore.consortium_key()
    now = datetime.now(UTC)
    batch_rows: list[dict[str, object]] = []
    record_rows: list[dict[str, object]] = []
    records: list[CanonicalRecord] = []
    anchored: set[tuple[str, int]] = set()

    def load(blob_key: str, owner: str) -> tuple[dict[str, object], CanonicalRecord] | None:
        try:
            blob = blobs.get(blob_key)
            parsed = parse_blob(blob)
            wrap = next(w for w in parsed.wrapped_keys if w.org_id == owner)
            opened = open_record(
                blob,
                org_id=owner,
                key_index=wrap.key_index,
                private_key=keystore.private_key(owner, wrap.key_index),
                expected_hash=blob_key,
            )
            record = CanonicalRecord.model_validate_json(opened.plaintext)
        except (LedgerError, StopIteration, ValueError) as exc:
            skipped.append(f"blob {blob_key}: {exc or type(exc).__name__}")
            return None
        row: dict[str, object] = {
            "record_id": parsed.header.record_id,
            "version": parsed.header.version,
            "owner_org": owner,
            "record_type": parsed.header.record_type,
            "community_code": record.community_code,
            "occurred_at": record.occurred_at.astimezone(UTC),
            "received_at": now,
            "fingerprint": record.content_fingerprint(),
            "blob_key": blob_key,
            "commitment": opened.commitment,
            "key_index": wrap.key_index,
        }
        return row, record

    progress("reading BatchAnchored events")
    events = iter_events(
        rpc,
        contract="RecordAnchors",
        address=deployment.address("RecordAnchors"),
        from_block=deployment.block_number,
        names=("BatchAnchored",),
    )
    for number, event in enumerate(events, start=1):
        owner = bytes(event.args["ownerOrg"]).rstrip(b"\0").decode()
        root = bytes(event.args["root"]).hex()
        manifest_key = bytes(event.args["manifestHash"]).hex()
        try:
            manifest = BatchManifest.from_bytes(blobs.get(manifest_key))
        except (LedgerError, ValueError) as exc:
            skipped.append(f"batch {root}: manifest {manifest_key} unusable: {exc}")
            continue
        if manifest.root().hex() != root or len(manifest.leaves) != event.args["size"]:
            skipped.append(f"batch {root}: manifest {manifest_key} does not rebuild the anchored root")
            continue
        batch_rows.append(
            {
                "number": number,
                "owner_org": owner,
                "signer": "",
                "root": root,
                "size": len(manifest.leaves),
                "manifest_key": manifest_key,
                "state": "anchored",
                "tx_hash": event.transaction_hash,
                "block_number": event.block_number,
                "created_at": now,
                "anchored_at": now,
            }
        )
        for leaf_index, leaf in enumerate(manifest.leaves):
            if (leaf.record_id, leaf.version) in anchored:
                skipped.append(f"record {leaf.record_id} v{leaf.version}: anchored again in batch {root}")
                continue
            loaded = load(leaf.ciphertext_hash, owner)
            if loaded is None:
                continue
            row, record = loaded
            row.update(batch_number=number, leaf_index=leaf_index)
            record_rows.append(row)
            records.append(record)
            anchored.add((leaf.record_id, leaf.version))
    anchored_count = len(record_rows)

    progress("scanning storage for records not yet anchored")
    referenced = {str(r["blob_key"]) for r in record_rows} | {str(b["manifest_key"]) for b in batch_rows}
    for key in blobs.iter_keys():
        if key in referenced:
            continue
        try:
            head = parse_blob(blobs.get(key)).header
        except (LedgerError, EnvelopeError):
            continue  # a manifest of an unanchored batch, or not ours
        if (head.record_id, head.version) in anchored:
            continue  # left behind by a push that failed before it was acknowledged
        loaded = load(key, head.owner_org)
        if loaded is not None:
            record_rows.append(loaded[0])
            records.append(loaded[1])
            anchored.add((head.record_id, head.version))

    with Session(engine) as session:
        connection = session.connection()
        connection.execute(delete(SubjectLink))
        connection.execute(delete(RecordVersion))
        connection.execute(delete(AnchorBatch))
        # The database assigns batch ids (explicit ids would leave a PostgreSQL sequence behind).
        batch_ids: dict[object, int | None] = {}
        for batch in batch_rows:
            stored = AnchorBatch.model_validate({k: v for k, v in batch.items() if k != "number"})
            session.add(stored)
            session.flush()
            batch_ids[batch["number"]] = stored.id
        if record_rows:
            rows = []
            for row in record_rows:
                batch_number = row.pop("batch_number", None)
                rows.append({"leaf_index": None, **row, "batch_id": batch_ids.get(batch_number)})
            connection.execute(insert(RecordVersion), rows)
        links = subject_links(consortium_key, records)
        if links:
            connection.execute(insert(SubjectLink), links)
        session.commit()
    return ReindexReport(
        batches=len(batch_rows),
        anchored_records=anchored_count,
        pending_records=len(record_rows) - anchored_count,
        skipped=tuple(skipped),
    )
