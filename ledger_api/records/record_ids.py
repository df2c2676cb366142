"""Which id a pushed record is stored under: keyed for the owner, legacy ids kept (DESIGN.md, Privacy).

A record id is an HMAC of (owner, type, native id) under the owner's record-id key
(:func:`adapters.canonical.derive_record_id`, scheme "v2"). The key is in the owner's keystore only, so
its gateway assigns ids on push; a client may leave ``record_id`` out, or send the id it was given.

Records stored before keyed ids carry the unkeyed SHA-256 id (scheme "v1",
:func:`adapters.canonical.derive_legacy_record_id`). They keep it: their id is on chain, in manifests and
in grants naming one record, and a new id would make them look like another record. So for each pushed
record the gateway looks up both candidate ids; when only the legacy one is stored, the push is that
record (unchanged, or its next version). A new record never gets a legacy id. The scheme need not be
stored anywhere else: the id is opaque downstream (reads, grants, reindex and the auditor only compare
it), and only this choice, made where the key is, depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from adapters.canonical import CanonicalRecord, derive_legacy_record_id, derive_record_id

__all__ = ["IdCandidates", "assign_record_ids", "id_candidates"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdCandidates:
    keyed: str
    """The id under the owner's key: what a new record gets."""
    legacy: str
    """The unkeyed id the record has if it was stored before keyed ids."""

    def both(self) -> tuple[str, str]:
        return self.keyed, self.legacy


def id_candidates(key: bytes, record: CanonicalRecord) -> IdCandidates:
    kind, native_id = record.record_type, record.source.native_id
    return IdCandidates(
        keyed=derive_record_id(key, record.owner_org, kind, native_id),
        legacy=derive_legacy_record_id(record.owner_org, kind, native_id),
    )


def _chosen(candidates: IdCandidates, stored: Container[str]) -> str:
    if candidates.legacy in stored and candidates.keyed not in stored:
        return candidates.legacy
    return candidates.keyed


def assign_record_ids(
    *,
    key: bytes,
    records: Sequence[CanonicalRecord],
    stored: Callable[[list[str]], Container[str]],
) -> tuple[list[CanonicalRecord], list[dict[str, object]]]:
    """``records`` with the id each is stored under, and an error for each that carried another id.

    ``stored`` answers which of the given ids the index holds (one call for the whole batch)."""
    candidates = [id_candidates(key, record) for record in records]
    held = stored([record_id for pair in candidates for record_id in pair.both()])
    assigned: list[CanonicalRecord] = []
    errors: list[dict[str, object]] = []
    for position, (record, pair) in enumerate(zip(records, candidates, strict=True)):
        record_id = _chosen(pair, held)
        if record.record_id is not None and record.record_id != record_id:
            # The expected id is not echoed: an answer naming it would be a guessing oracle for native ids.
            errors.append({
                "index": position,
                "field": "record_id",
                "message": "record_id is not derive_record_id(owner, type, native id) under the owner's record-id "
                "key; leave it out and the gateway assigns it",
            })  # fmt: skip
            continue
        assigned.append(record if record.record_id == record_id else record.model_copy(update={"record_id": record_id}))
    return assigned, errors
