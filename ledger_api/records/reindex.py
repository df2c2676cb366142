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
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from adapters.canonical import CanonicalRecord
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.events import DecodedEvent, iter_events
from ledger_api.chain.rpc import JsonRpc
from ledger_api.crypto.envelope import OpenedRecord, RecordHeader, open_record, parse_blob
from ledger_api.crypto.errors import EnvelopeError
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.errors import LedgerError
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink
from ledger_api.records.commitment import RECORD_COMMITMENT, sealed_under
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
    consortium_key = keystore.consortium_key()
    Erasure.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    old_erased_rows, erasure_rows = _erasure_evidence(engine)
    rebuild = _Rebuild(blobs=blobs, keystore=keystore, rpc=rpc, now=datetime.now(UTC))
    progress("reading BatchAnchored events")
    events = iter_events(
        rpc,
        contract="RecordAnchors",
        address=deployment.address("RecordAnchors"),
        from_block=deployment.block_number,
        names=("BatchAnchored",),
    )
    for number, event in enumerate(events, start=1):
        rebuild.add_batch(number, event)
    progress("scanning storage for erased records and records not yet anchored")
    unanchored = rebuild.scan_storage()
    erased = set(rebuild.shredded) | set(erasure_rows) | set(old_erased_rows)
    rebuild.add_unanchored(unanchored, erased=erased)
    progress("keeping erasures")
    for key in sorted(erased):
        old = old_erased_rows.get(key)
        when = erasure_rows[key].erased_at if key in erasure_rows else old.shredded_at if old else None
        rebuild.keep_erasure(key, old=old, erased_at=when or rebuild.now)
    rebuild.skip_missing_blobs()
    ordered = sorted(rebuild.entries.values(), key=lambda e: "batch_number" not in e.row)  # anchored first
    _write_index(
        engine,
        batch_rows=rebuild.batch_rows,
        entries=ordered,
        consortium_key=consortium_key,
        restored_erasures=rebuild.restored_erasures(known=erasure_rows),
    )
    # Only once the index says "erased" (no read opens the blob any more) is the leftover original deleted.
    for blob_key in rebuild.leftovers:
        blobs.delete(blob_key)
    anchored_count = sum(1 for e in ordered if "batch_number" in e.row)
    return ReindexReport(
        batches=len(rebuild.batch_rows),
        anchored_records=anchored_count,
        pending_records=len(ordered) - anchored_count,
        skipped=tuple(rebuild.skipped),
        erased_records=sum(1 for e in ordered if e.row["shredded_at"] is not None),
    )


@dataclass(kw_only=True)
class _MissingLeaf:
    """An anchored leaf whose blob is gone: erased (resolved by the storage scan), or lost."""

    leaf: RecordLeaf
    meta: LeafMetadata
    batch_number: int
    leaf_index: int


@dataclass(kw_only=True)
class _Rebuild:
    """What a rebuild has found so far, phase by phase (batches, storage, erasures); nothing written yet."""

    blobs: BlobStore
    keystore: OrgKeystore
    rpc: JsonRpc
    now: datetime
    skipped: list[str] = field(default_factory=list)
    batch_rows: list[dict[str, object]] = field(default_factory=list)
    entries: dict[VersionKey, _Entry] = field(default_factory=dict)
    blob_missing: dict[VersionKey, _MissingLeaf] = field(default_factory=dict)
    shredded: dict[VersionKey, _Shredded] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    """Originals an interrupted erasure left behind: deleted once the index says "erased"."""

    def open_entry(
        self, blob_key: str, owner: str, blob: bytes | None = None, *, anchored: str | None = None
    ) -> _Entry | None:
        """The index row (and record) of a blob the owner's key opens; None, with the reason skipped, else.
        ``anchored`` is the commitment its leaf anchored: the version may have been sealed under an older
        scheme than today's (``commitment.SEALED_SCHEMES``), and the index must keep the anchored value."""
        try:
            blob = self.blobs.get(blob_key) if blob is None else blob
            parsed = parse_blob(blob)
            wrap = next(w for w in parsed.wrapped_keys if w.org_id == owner)
            opened = open_record(
                blob,
                org_id=owner,
                key_index=wrap.key_index,
                private_key=self.keystore.private_key(owner, wrap.key_index),
                expected_hash=blob_key,
                commitment_scheme=RECORD_COMMITMENT,
            )
            record = CanonicalRecord.model_validate_json(opened.plaintext)
        except (LedgerError, StopIteration, ValueError) as exc:
            self.skipped.append(f"blob {blob_key}: {exc or type(exc).__name__}")
            return None
        commitment = _commitment_kept(opened, anchored)
        if commitment is None:
            self.skipped.append(f"blob {blob_key}: its plaintext does not match its anchored commitment")
            return None
        row: dict[str, object] = {
            "record_id": parsed.header.record_id,
            "version": parsed.header.version,
            "owner_org": owner,
            "record_type": parsed.header.record_type,
            "community_code": record.community_code,
            "occurred_at": record.occurred_at.astimezone(UTC),
            "received_at": self.now,
            "fingerprint": record.content_fingerprint(),
            "blob_key": blob_key,
            "commitment": commitment,
            "key_index": wrap.key_index,
            "shredded_at": None,
        }
        return _Entry(row=row, record=record)

    def add_batch(self, number: int, event: DecodedEvent) -> None:
        """One ``BatchAnchored`` event: its batch row, and an entry per leaf its manifest lists."""
        owner = bytes(event.args["ownerOrg"]).rstrip(b"\0").decode()
        root = bytes(event.args["root"]).hex()
        manifest_key = bytes(event.args["manifestHash"]).hex()
        try:
            manifest = BatchManifest.from_bytes(self.blobs.get(manifest_key))
        except (LedgerError, ValueError) as exc:
            self.skipped.append(f"batch {root}: manifest {manifest_key} unusable: {exc}")
            return
        if manifest.root().hex() != root or len(manifest.leaves) != event.args["size"]:
            self.skipped.append(f"batch {root}: manifest {manifest_key} does not rebuild the anchored root")
            return
        self.batch_rows.append(
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
                "created_at": self.now,
                "anchored_at": self.now,
            }
        )
        for leaf_index, leaf in enumerate(manifest.leaves):
            self._add_leaf(
                leaf, manifest.metadata_at(leaf_index), owner=owner, root=root, position=(number, leaf_index)
            )

    def _add_leaf(
        self, leaf: RecordLeaf, meta: LeafMetadata, *, owner: str, root: str, position: tuple[int, int]
    ) -> None:
        key = (leaf.record_id, leaf.version)
        if key in self.entries or key in self.blob_missing:
            self.skipped.append(f"record {leaf.record_id} v{leaf.version}: anchored again in batch {root}")
            return
        number, leaf_index = position
        try:
            blob = self.blobs.get(leaf.ciphertext_hash)
        except BlobNotFound:
            self.blob_missing[key] = _MissingLeaf(leaf=leaf, meta=meta, batch_number=number, leaf_index=leaf_index)
            return
        except LedgerError as exc:
            self.skipped.append(f"blob {leaf.ciphertext_hash}: {exc}")
            return
        loaded = self.open_entry(leaf.ciphertext_hash, owner, blob, anchored=leaf.commitment)
        if loaded is not None:
            loaded.row.update(batch_number=number, leaf_index=leaf_index)
            self.entries[key] = loaded

    def scan_storage(self) -> list[tuple[str, RecordHeader]]:
        """Record blobs no anchored batch lists: shredded ones are noted, the others returned (unanchored)."""
        referenced = {str(e.row["blob_key"]) for e in self.entries.values()}
        referenced |= {str(b["manifest_key"]) for b in self.batch_rows}
        unanchored: list[tuple[str, RecordHeader]] = []
        for blob_key in self.blobs.iter_keys():
            if blob_key in referenced:
                continue
            try:
                parsed = parse_blob(self.blobs.get(blob_key))
            except (LedgerError, EnvelopeError):
                continue  # a manifest of an unanchored batch, or not ours
            head = parsed.header
            if parsed.shredded:
                self.shredded[(head.record_id, head.version)] = _Shredded(key=blob_key, record_type=head.record_type)
            else:
                unanchored.append((blob_key, head))
        return unanchored

    def add_unanchored(self, unanchored: list[tuple[str, RecordHeader]], *, erased: set[VersionKey]) -> None:
        """Acknowledged pushes still waiting for their anchor come back as pending."""
        for blob_key, head in unanchored:
            key = (head.record_id, head.version)
            if key in self.entries or key in self.blob_missing:
                continue  # left behind by a push that failed before it was acknowledged
            if key in erased:
                self.leftovers.append(blob_key)  # an original an interrupted erasure left behind: never opened again
                continue
            loaded = self.open_entry(blob_key, head.owner_org)
            if loaded is not None:
                self.entries[key] = loaded

    def keep_erasure(self, key: VersionKey, *, old: RecordVersion | None, erased_at: datetime) -> None:
        """An erased version comes back erased, with what is still known of it (module docstring)."""
        entry = self.entries.get(key)
        if entry is not None:
            # The original blob is still there (the erasure was interrupted before deleting it).
            self.leftovers.append(str(entry.row["blob_key"]))
            entry.row["shredded_at"] = erased_at
            entry.record = None
        elif key in self.blob_missing:
            missing = self.blob_missing.pop(key)
            block_number = next(
                int(str(b["block_number"])) for b in self.batch_rows if b["number"] == missing.batch_number
            )
            row = _erased_row(
                leaf=missing.leaf, meta=missing.meta, old=old, marker=self.shredded.get(key), rpc=self.rpc,
                block_number=block_number, now=self.now,
            )  # fmt: skip
            row.update(batch_number=missing.batch_number, leaf_index=missing.leaf_index, shredded_at=erased_at)
            self.entries[key] = _Entry(row=row, record=None)
        elif old is not None:
            # Erased before it was anchored: the old row still holds what the worker needs to anchor it.
            self.entries[key] = _Entry(row=_old_row(old, shredded_at=erased_at), record=None)
        elif key in self.shredded:
            self.skipped.append(
                f"record {key[0]} v{key[1]}: erased before it was anchored, and no index row says what to anchor"
            )

    def skip_missing_blobs(self) -> None:
        for missing in self.blob_missing.values():
            leaf = missing.leaf
            self.skipped.append(
                f"blob {leaf.ciphertext_hash}: missing from storage (record {leaf.record_id} v{leaf.version})"
            )

    def restored_erasures(self, *, known: dict[VersionKey, Erasure]) -> list[dict[str, object]]:
        """``erasures`` rows for shredded versions the table lost (erased by the owner, at the rebuild)."""
        return [
            {
                "record_id": key[0],
                "version": key[1],
                "original_blob_key": self.entries[key].row["blob_key"],
                "shredded_blob_key": self.shredded[key].key,
                "erased_at": self.entries[key].row["shredded_at"],
                "erased_by": self.entries[key].row["owner_org"],
            }
            for key in sorted(self.shredded)
            if key not in known and key in self.entries
        ]


def _write_index(
    engine: Engine,
    *,
    batch_rows: list[dict[str, object]],
    entries: list[_Entry],
    consortium_key: bytes,
    restored_erasures: list[dict[str, object]],
) -> None:
    """Replace batches, record versions and subject links in one transaction (the access log is kept)."""
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
        if entries:
            rows = []
            for entry in entries:
                row = dict(entry.row)
                batch_number = row.pop("batch_number", None)
                rows.append({"leaf_index": None, **row, "batch_id": batch_ids.get(batch_number)})
            connection.execute(insert(RecordVersion), rows)
        links = subject_links(consortium_key, [e.record for e in entries if e.record is not None])
        if links:
            connection.execute(insert(SubjectLink), links)
        if restored_erasures:
            connection.execute(insert(Erasure), restored_erasures)
        session.commit()


def _erasure_evidence(engine: Engine) -> tuple[dict[VersionKey, RecordVersion], dict[VersionKey, Erasure]]:
    """What the database says was erased before the rebuild: old index rows and ``erasures`` rows."""
    with Session(engine) as session:
        old = session.exec(select(RecordVersion).where(col(RecordVersion.shredded_at).is_not(None))).all()
        done = session.exec(select(Erasure)).all()
    return {(r.record_id, r.version): r for r in old}, {(e.record_id, e.version): e for e in done}


def _commitment_kept(opened: OpenedRecord, anchored: str | None) -> str | None:
    """The commitment to index: the anchored one when the plaintext opens it under any scheme a version may
    have been sealed with (None when none does), today's scheme's for a version not anchored."""
    if anchored is None or anchored.lower() == opened.commitment:
        return opened.commitment
    found = sealed_under(plaintext=opened.plaintext, salt=opened.salt, data_key=opened.data_key, commitment=anchored)
    return anchored.lower() if found is not None else None


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
