"""``ledger reindex``: rebuild the gateway's index from chain events and blob storage alone.

The index is only an index (DESIGN.md invariant 3). Batches come from ``BatchAnchored`` events; each
batch's manifest (named by the event's ``manifestHash``) lists its leaves; each leaf's blob is opened
with the owner's key to recover the metadata the index serves (type, community, time, blind
indexes). Record blobs that no anchored batch lists are acknowledged pushes still waiting for their
anchor: they come back as pending and the worker anchors them.

What a rebuild keeps:

* **Erasures stay erased** (crypto-shredding, ``ledger_api.records.erasure``). A record version is
  erased when storage holds its shredded blob (same header, no wrapped key), or when the ``erasures``
  table or the old index row says so. Such a version comes back with ``shredded_at`` set (reads answer
  410), its anchored hash and commitment (status and proofs still verify), no subject links, and its
  original blob, if an interrupted erasure left it behind, is deleted: it is never opened again.
  Metadata that lived only inside the shredded ciphertext comes from the old index row when there is
  one; otherwise type and community come from the batch manifest (format v2; unknown, empty, in v1
  manifests) and the anchoring block's time stands in for the time of the event. A missing
  ``erasures`` row is restored (erased by the owner, at the rebuild).
* **The access log** (``access_log_entries``, ``access_log_heads``) is the log's durable state, not
  an index of the chain: it is never touched, so reads after a rebuild append to the same log and
  every entry, proof and anchored head stays valid.
* API keys are gateway configuration, not ledger data, and are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from adapters.canonical import CanonicalRecord
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.events import iter_events
from ledger_api.chain.rpc import JsonRpc
from ledger_api.crypto.envelope import RecordHeader, open_record, parse_blob
from ledger_api.crypto.errors import EnvelopeError
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.errors import LedgerError
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink
from ledger_api.records.commitment import RECORD_COMMITMENT
from ledger_api.records.erasure import Erasure
from ledger_api.records.ingest import subject_links
from ledger_api.records.leaves import BatchManifest, LeafMetadata, RecordLeaf
from ledger_api.storage.base import BlobStore
from ledger_api.storage.errors import BlobNotFound

VersionKey = tuple[str, int]


@dataclass(frozen=True, kw_only=True)
class ReindexReport:
    batches: int
    anchored_records: int
    pending_records: int
    skipped: tuple[str, ...]
    """Blobs or batches that could not be used, each with the reason."""
    erased_records: int = 0
    """Record versions indexed as erased (counted in ``anchored_records`` / ``pending_records`` too)."""


@dataclass(frozen=True, kw_only=True)
class _Shredded:
    """A shredded blob found in storage: the erased version's lasting marker."""

    key: str
    record_type: str


@dataclass(kw_only=True)
class _Entry:
    """One record version being rebuilt: its index row, and its record while it can still be opened."""

    row: dict[str, object]
    record: CanonicalRecord | None


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
    entries: dict[VersionKey, _Entry] = {}
    # Anchored leaves whose blob is gone: erased (resolved by the storage scan below), or lost.
    blob_missing: dict[VersionKey, tuple[RecordLeaf, LeafMetadata, int, int]] = {}
    Erasure.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    old_erased_rows, erasure_rows = _erasure_evidence(engine)

    def load(blob_key: str, owner: str, blob: bytes | None = None) -> _Entry | None:
        try:
            blob = blobs.get(blob_key) if blob is None else blob
            parsed = parse_blob(blob)
            wrap = next(w for w in parsed.wrapped_keys if w.org_id == owner)
            opened = open_record(
                blob,
                org_id=owner,
                key_index=wrap.key_index,
                private_key=keystore.private_key(owner, wrap.key_index),
                expected_hash=blob_key,
                commitment_scheme=RECORD_COMMITMENT,
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
            "shredded_at": None,
        }
        return _Entry(row=row, record=record)

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
            key = (leaf.record_id, leaf.version)
            if key in entries or key in blob_missing:
                skipped.append(f"record {leaf.record_id} v{leaf.version}: anchored again in batch {root}")
                continue
            try:
                blob = blobs.get(leaf.ciphertext_hash)
            except BlobNotFound:
                blob_missing[key] = (leaf, manifest.metadata_at(leaf_index), number, leaf_index)
                continue
            except LedgerError as exc:
                skipped.append(f"blob {leaf.ciphertext_hash}: {exc}")
                continue
            loaded = load(leaf.ciphertext_hash, owner, blob)
            if loaded is None:
                continue
            loaded.row.update(batch_number=number, leaf_index=leaf_index)
            entries[key] = loaded

    progress("scanning storage for erased records and records not yet anchored")
    referenced = {str(e.row["blob_key"]) for e in entries.values()} | {str(b["manifest_key"]) for b in batch_rows}
    shredded: dict[VersionKey, _Shredded] = {}
    unanchored: list[tuple[str, RecordHeader]] = []
    for blob_key in blobs.iter_keys():
        if blob_key in referenced:
            continue
        try:
            parsed = parse_blob(blobs.get(blob_key))
        except (LedgerError, EnvelopeError):
            continue  # a manifest of an unanchored batch, or not ours
        head = parsed.header
        if parsed.shredded:
            shredded[(head.record_id, head.version)] = _Shredded(key=blob_key, record_type=head.record_type)
        else:
            unanchored.append((blob_key, head))
    erased = set(shredded) | set(erasure_rows) | set(old_erased_rows)
    leftovers: list[str] = []
    for blob_key, head in unanchored:
        key = (head.record_id, head.version)
        if key in entries or key in blob_missing:
            continue  # left behind by a push that failed before it was acknowledged
        if key in erased:
            leftovers.append(blob_key)  # an original an interrupted erasure left behind: never opened again
            continue
        loaded = load(blob_key, head.owner_org)
        if loaded is not None:
            entries[key] = loaded

    progress("keeping erasures")
    for key in sorted(erased):
        entry = entries.get(key)
        old = old_erased_rows.get(key)
        when = erasure_rows[key].erased_at if key in erasure_rows else old.shredded_at if old else None
        if entry is not None:
            # The original blob is still there (the erasure was interrupted before deleting it).
            leftovers.append(str(entry.row["blob_key"]))
            entry.row["shredded_at"] = when or now
            entry.record = None
            continue
        if key in blob_missing:
            leaf, meta, number, leaf_index = blob_missing.pop(key)
            block_number = next(int(str(b["block_number"])) for b in batch_rows if b["number"] == number)
            row = _erased_row(
                leaf=leaf, meta=meta, old=old, marker=shredded.get(key), rpc=rpc, block_number=block_number, now=now
            )
            row.update(batch_number=number, leaf_index=leaf_index, shredded_at=when or now)
            entries[key] = _Entry(row=row, record=None)
        elif old is not None:
            # Erased before it was anchored: the old row still holds what the worker needs to anchor it.
            entries[key] = _Entry(row=_old_row(old, shredded_at=when or now), record=None)
        elif key in shredded:
            skipped.append(
                f"record {key[0]} v{key[1]}: erased before it was anchored, and no index row says what to anchor"
            )
    for leaf, _meta, _number, _index in blob_missing.values():
        skipped.append(f"blob {leaf.ciphertext_hash}: missing from storage (record {leaf.record_id} v{leaf.version})")

    restored_erasures = [
        {
            "record_id": key[0],
            "version": key[1],
            "original_blob_key": entries[key].row["blob_key"],
            "shredded_blob_key": shredded[key].key,
            "erased_at": entries[key].row["shredded_at"],
            "erased_by": entries[key].row["owner_org"],
        }
        for key in sorted(shredded)
        if key not in erasure_rows and key in entries
    ]
    ordered = sorted(entries.values(), key=lambda e: "batch_number" not in e.row)  # anchored first
    anchored_count = sum(1 for e in ordered if "batch_number" in e.row)
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
        if ordered:
            rows = []
            for entry in ordered:
                row = dict(entry.row)
                batch_number = row.pop("batch_number", None)
                rows.append({"leaf_index": None, **row, "batch_id": batch_ids.get(batch_number)})
            connection.execute(insert(RecordVersion), rows)
        links = subject_links(consortium_key, [e.record for e in ordered if e.record is not None])
        if links:
            connection.execute(insert(SubjectLink), links)
        if restored_erasures:
            connection.execute(insert(Erasure), restored_erasures)
        session.commit()
    # Only once the index says "erased" (no read opens the blob any more) is the leftover original deleted.
    for blob_key in leftovers:
        blobs.delete(blob_key)
    return ReindexReport(
        batches=len(batch_rows),
        anchored_records=anchored_count,
        pending_records=len(ordered) - anchored_count,
        skipped=tuple(skipped),
        erased_records=sum(1 for e in ordered if e.row["shredded_at"] is not None),
    )


def _erasure_evidence(engine: Engine) -> tuple[dict[VersionKey, RecordVersion], dict[VersionKey, Erasure]]:
    """What the database says was erased before the rebuild: old index rows and ``erasures`` rows."""
    with Session(engine) as session:
        old = session.exec(select(RecordVersion).where(col(RecordVersion.shredded_at).is_not(None))).all()
        done = session.exec(select(Erasure)).all()
    return {(r.record_id, r.version): r for r in old}, {(e.record_id, e.version): e for e in done}


def _old_row(old: RecordVersion, *, shredded_at: datetime) -> dict[str, object]:
    return {
        "record_id": old.record_id,
        "version": old.version,
        "owner_org": old.owner_org,
        "record_type": old.record_type,
        "community_code": old.community_code,
        "occurred_at": old.occurred_at,
        "received_at": old.received_at,
        "fingerprint": old.fingerprint,
        "blob_key": old.blob_key,
        "commitment": old.commitment,
        "key_index": old.key_index,
        "shredded_at": shredded_at,
    }


def _erased_row(
    *,
    leaf: RecordLeaf,
    meta: LeafMetadata,
    old: RecordVersion | None,
    marker: _Shredded | None,
    rpc: JsonRpc,
    block_number: int,
    now: datetime,
) -> dict[str, object]:
    """The index row of an anchored, erased version: the leaf's anchored fields, the rest as far as known."""
    if old is not None:
        row = _old_row(old, shredded_at=now)
    else:
        block = rpc.block(block_number) or {}
        anchored_at = datetime.fromtimestamp(int(str(block.get("timestamp", "0x0")), 16), UTC)
        row = {
            "record_id": leaf.record_id,
            "version": leaf.version,
            "owner_org": leaf.owner_org,
            "record_type": meta.record_type or (marker.record_type if marker else ""),
            "community_code": meta.community_code or "",
            "occurred_at": anchored_at,
            "received_at": now,
            "fingerprint": "",
            "key_index": 0,
        }
    row.update(blob_key=leaf.ciphertext_hash, commitment=leaf.commitment)
    return row
