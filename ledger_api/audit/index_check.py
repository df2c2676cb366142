"""Opt-in: compare the gateway's index with what the audit verified, and name every edited row.

The index is never evidence (DESIGN.md invariant 3): the verifier does not read it. But the gateway
answers list, status and proof requests from it, so an edited row misleads its users; this check
(``ledger audit verify --check-index DB_URL``) names each row that disagrees with the verified facts as
``index-mismatch``. It is the only module of :mod:`ledger_api.audit` allowed to import the index
(``tests/test_architecture.py``).

Checked: every anchored ``record_versions`` row (owner, type, community, ciphertext hash, batch root,
leaf index) against the anchored manifests, every anchored ``anchor_batches`` row (size, manifest,
transaction, block) against the ``BatchAnchored`` receipts, and every ``access_log_entries`` row (its
leaf data) against the verified log; anchored record versions and log entries missing from the index
are named too. Rows not anchored yet (pending pushes, entries after the newest head) are not compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from ledger_api.accesslog.entry import Entry
from ledger_api.accesslog.errors import InvalidEntry
from ledger_api.audit.errors import SourceUnavailable
from ledger_api.audit.evidence import Evidence
from ledger_api.audit.model import AuditResult, Discrepancy, DiscrepancyKind
from ledger_api.index.database import make_engine
from ledger_api.index.models import AccessLogEntryRow, AnchorBatch, RecordVersion

__all__ = ["check_index"]

K = DiscrepancyKind.INDEX_MISMATCH


def check_index(database_url: str, result: AuditResult, evidence: Evidence) -> list[Discrepancy]:
    """Index rows that disagree with ``result`` (verified from ``evidence``)."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            versions = session.exec(
                select(RecordVersion, AnchorBatch).join(
                    AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True
                )
            ).all()
            batches = session.exec(select(AnchorBatch).where(col(AnchorBatch.state) == "anchored")).all()
            entries = session.exec(select(AccessLogEntryRow).order_by(col(AccessLogEntryRow.seq))).all()
    except SQLAlchemyError as exc:
        raise SourceUnavailable(f"cannot read the index at {database_url}: {type(exc).__name__}") from exc
    finally:
        engine.dispose()
    found: list[Discrepancy] = []
    found += _records(result, [(v, b) for v, b in versions])
    found += _batches(evidence, batches)
    found += _entries(evidence, entries)
    return found


def _mismatch(subject: str, detail: str, where: str) -> Discrepancy:
    return Discrepancy(kind=K, subject=subject, detail=detail, where=where)


def _records(result: AuditResult, rows: Sequence[tuple[RecordVersion, AnchorBatch | None]]) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    verified = {(r.record_id, r.version): r for r in result.records}
    seen: set[tuple[str, int]] = set()
    for row, batch in rows:
        if batch is None or batch.state != "anchored":
            continue
        key = (row.record_id, row.version)
        seen.add(key)
        subject = f"index row record_versions id={row.id} (record {row.record_id[:12]}… v{row.version})"
        record = verified.get(key)
        if record is None:
            found.append(_mismatch(subject, "marked anchored, but no anchored manifest lists it", "record_versions"))
            continue
        expected = {
            "owner_org": record.owner_org,
            "record_type": record.record_type,
            "community_code": record.community_code,
            "blob_key": record.ciphertext_hash,
            "batch root": record.batch_root,
            "leaf_index": record.leaf_index,
        }
        actual = {
            "owner_org": row.owner_org,
            "record_type": row.record_type if record.record_type is not None else None,
            "community_code": row.community_code if record.community_code is not None else None,
            "blob_key": row.blob_key,
            "batch root": batch.root,
            "leaf_index": row.leaf_index,
        }
        for name, value in expected.items():
            if actual[name] != value:
                found.append(
                    _mismatch(
                        subject, f"{name} is {actual[name]!r}, verified {value!r}", f"record_versions id={row.id}"
                    )
                )
    for key in sorted(set(verified) - seen):
        found.append(
            _mismatch(
                f"record {key[0][:12]}… v{key[1]}",
                "anchored on chain but missing (or not anchored) in the index",
                "record_versions",
            )
        )
    return found


def _batches(evidence: Evidence, batches: Sequence[AnchorBatch]) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    receipts = {r.root: r for r in evidence.chain.receipts}
    for batch in batches:
        subject = f"index row anchor_batches id={batch.id} (root {batch.root[:12]}…)"
        receipt = receipts.get(batch.root)
        if receipt is None:
            found.append(
                _mismatch(subject, "marked anchored, but no BatchAnchored event has its root", "anchor_batches")
            )
            continue
        expected = {
            "owner_org": receipt.owner_org,
            "size": receipt.size,
            "manifest_key": receipt.manifest_hash,
            "tx_hash": receipt.transaction,
            "block_number": receipt.block_number,
        }
        for name, value in expected.items():
            actual = getattr(batch, name)
            if actual != value:
                found.append(
                    _mismatch(subject, f"{name} is {actual!r}, on chain {value!r}", f"anchor_batches id={batch.id}")
                )
    return found


def _entries(evidence: Evidence, rows: Sequence[AccessLogEntryRow]) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    verified = evidence.storage.entries
    anchored = max((h.size for h in evidence.chain.heads), default=0)
    by_seq = {row.seq: row for row in rows}
    for seq in range(min(anchored, len(verified))):
        row = by_seq.get(seq)
        subject = f"index row access_log_entries seq={seq}"
        if row is None:
            found.append(_mismatch(subject, "an anchored access entry is missing from the index", "access_log_entries"))
            continue
        if bytes(row.data) != verified[seq]:
            found.append(
                _mismatch(subject, "its leaf data differs from the anchored entry", f"access_log_entries seq={seq}")
            )
            continue
        try:
            entry = Entry.from_leaf_data(bytes(row.data))
        except InvalidEntry:  # pragma: no cover - equal to verified bytes, which parsed
            continue
        for name in ("accessor_org", "record_id", "request_id"):
            if getattr(row, name) != getattr(entry, name):
                found.append(
                    _mismatch(
                        subject,
                        f"{name} is {getattr(row, name)!r}, the entry says {getattr(entry, name)!r}",
                        f"access_log_entries seq={seq}",
                    )
                )
    return found
