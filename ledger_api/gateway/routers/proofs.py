"""Proofs an auditor checks without trusting the gateway: RFC 9162 inclusion of a record in its anchored
batch, inclusion of an access-log entry under an anchored tree head, and consistency between two heads.

Every proof is rebuilt from what an auditor could rebuild it from (the batch manifest in storage, the
access log's leaves), never taken from a cached answer; the roots it leads to are the ones on chain.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from ledger_api.accesslog.entry import Entry
from ledger_api.gateway.deps import CurrentFollower, CurrentOrg, Services
from ledger_api.gateway.problems import Conflict, InvalidRecord, NotFound, Unavailable, problem_responses
from ledger_api.gateway.services import GatewayServices
from ledger_api.gateway.visibility import visible_records_filter
from ledger_api.index.models import AccessLogHeadRow, AnchorBatch, RecordVersion
from ledger_api.merkle.rfc9162 import MerkleTree, encode_proof
from ledger_api.records.leaves import BatchManifest, RecordLeaf

router = APIRouter(tags=["proofs"])

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_MAX_INDEX = 2**63 - 1


class RecordLeafFields(BaseModel):
    """The fields of a record version's anchor leaf (``RecordAnchors.recordLeafHash``)."""

    model_config = _FROZEN

    record_id: str
    version: int
    owner_org: str
    ciphertext_hash: str
    commitment: str


class RecordProof(BaseModel):
    """RFC 9162 inclusion of a record version's leaf in the batch root anchored by ``transaction``."""

    model_config = _FROZEN

    leaf: RecordLeafFields
    leaf_hash: str
    batch_root: str
    tree_size: int
    leaf_index: int
    inclusion_path: list[str] = Field(description="Hex hashes, from the leaf's sibling up to the root")
    transaction: str
    block_number: int


class AccessHead(BaseModel):
    """An anchored tree head of the access log."""

    model_config = _FROZEN

    index: int | None = Field(description="The head's index in AccessLogAnchors (headAt)")
    size: int
    root: str
    block_number: int | None
    transaction: str | None


class AccessHeads(BaseModel):
    model_config = _FROZEN

    heads: list[AccessHead]


class AccessEntryProof(BaseModel):
    """RFC 9162 inclusion of an access-log entry in the tree of ``tree_size`` entries."""

    model_config = _FROZEN

    index: int
    entry: dict[str, Any] = Field(description="The entry's canonical fields (its leaf data is their canonical JSON)")
    leaf_hash: str
    tree_size: int
    root: str
    inclusion_path: list[str]
    head: AccessHead | None = Field(description="The anchored head of this size, if there is one")


class ConsistencyProof(BaseModel):
    """RFC 9162 proof that the tree of ``to_size`` entries extends the one of ``from_size``."""

    model_config = _FROZEN

    from_size: int
    to_size: int
    from_root: str
    to_root: str
    proof: list[str]


# --- records -------------------------------------------------------------------------------------------------


@router.get(
    "/records/{record_id}/proof",
    response_model=RecordProof,
    summary="Inclusion proof of a record version in its anchored batch, with the anchor transaction",
    responses=problem_responses(401, 404, 409, 422, 503, descriptions={
        404: "No such record (version) visible to the caller",
        409: "The record version is not anchored yet",
        503: "The batch manifest is missing from storage or does not rebuild the root, or the chain view lags",
    }),
)  # fmt: skip
def record_proof(
    record_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="64 hex digits")],
    org_id: CurrentOrg,
    services: Services,
    follower: CurrentFollower,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Default: the latest version")] = None,
) -> RecordProof:
    query = (
        select(RecordVersion, AnchorBatch)
        .join(AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True)
        .where(col(RecordVersion.record_id) == record_id, visible_records_filter(org_id, follower))
    )
    if version is not None:
        query = query.where(col(RecordVersion.version) == version)
    with Session(services.engine) as session:
        row = session.exec(query.order_by(col(RecordVersion.version).desc()).limit(1)).first()
    if row is None:
        raise NotFound(f"no record {record_id}" + (f" version {version}" if version is not None else ""))
    record, batch = row
    if batch is None or batch.state != "anchored" or record.leaf_index is None or batch.block_number is None:
        raise Conflict(f"record {record_id} version {record.version} is not anchored yet; retry later")
    leaf = RecordLeaf(
        record_id=record.record_id, version=record.version, owner_org=record.owner_org,
        ciphertext_hash=record.blob_key, commitment=record.commitment,
    )  # fmt: skip
    tree = _batch_tree(services, batch)
    index = record.leaf_index
    if index >= tree.size or tree.leaf_hash_at(index) != leaf.leaf_hash():
        raise Unavailable(
            f"batch {batch.root}: leaf {index} of the manifest is not record {record_id} v{record.version}"
        )
    return RecordProof(
        leaf=RecordLeafFields(
            record_id=leaf.record_id, version=leaf.version, owner_org=leaf.owner_org,
            ciphertext_hash=leaf.ciphertext_hash, commitment=leaf.commitment,
        ),
        leaf_hash=leaf.leaf_hash().hex(),
        batch_root=batch.root,
        tree_size=tree.size,
        leaf_index=index,
        inclusion_path=encode_proof(tree.inclusion_proof(index)),
        transaction=batch.tx_hash or "",
        block_number=batch.block_number,
    )  # fmt: skip


def _batch_tree(services: GatewayServices, batch: AnchorBatch) -> MerkleTree:
    try:
        manifest = BatchManifest.from_bytes(services.blobs.get(batch.manifest_key))
    except (ValueError, KeyError, TypeError) as exc:
        raise Unavailable(f"batch {batch.root}: manifest {batch.manifest_key} unusable: {exc}") from exc
    tree = manifest.tree()
    if tree.root().hex() != batch.root or tree.size != batch.size:
        raise Unavailable(f"batch {batch.root}: the manifest in storage does not rebuild the anchored root")
    return tree


# --- the access log --------------------------------------------------------------------------------------------


def _anchored_heads(services: GatewayServices) -> list[AccessLogHeadRow]:
    with Session(services.engine) as session:
        return list(
            session.exec(
                select(AccessLogHeadRow)
                .where(col(AccessLogHeadRow.state) == "anchored")
                .order_by(col(AccessLogHeadRow.size))
            ).all()
        )


def _head(row: AccessLogHeadRow) -> AccessHead:
    return AccessHead(
        index=row.head_index,
        size=row.size,
        root=row.root,
        block_number=row.block_number,
        transaction=row.tx_hash,
    )


def _log_size(services: GatewayServices, needed: int) -> int:
    """The log's size, taking in rows other processes committed when the tree lacks ``needed`` entries."""
    size = services.access_log.size
    return services.access_log.refresh() if size < needed else size


@router.get(
    "/access-log/heads",
    response_model=AccessHeads,
    summary="The access log's anchored tree heads (compare with AccessLogAnchors.headAt)",
    responses=problem_responses(401),
)
def access_log_heads(org_id: CurrentOrg, services: Services) -> AccessHeads:
    del org_id  # any organisation: heads are hashes, public on chain anyway
    return AccessHeads(heads=[_head(row) for row in _anchored_heads(services)])


@router.get(
    "/access-log/entries/{index}/proof",
    response_model=AccessEntryProof,
    summary="An access-log entry and its inclusion proof under an anchored tree head",
    responses=problem_responses(401, 404, 409, 422, 503, descriptions={
        404: "No such entry visible to the caller (its accessor or the record's owner), or not in a tree of tree_size",
        409: "The entry is not under an anchored tree head yet",
    }),
)  # fmt: skip
def access_entry_proof(
    index: Annotated[int, Path(ge=0, le=_MAX_INDEX, description="The entry's leaf index")],
    org_id: CurrentOrg,
    services: Services,
    tree_size: Annotated[
        int | None, Query(ge=1, le=_MAX_INDEX, description="Default: the size of the latest anchored head")
    ] = None,
) -> AccessEntryProof:
    size = _log_size(services, index + 1)
    if index >= size:
        raise NotFound(f"no access-log entry {index}")
    entry: Entry = services.access_log.entry(index)
    if org_id not in (entry.accessor_org, entry.owner_org):
        raise NotFound(f"no access-log entry {index}")  # another's entry answers like a missing one
    heads = {row.size: row for row in _anchored_heads(services)}
    if tree_size is None:
        tree_size = max(heads, default=0)
        if index >= tree_size:
            raise Conflict(f"access-log entry {index} is not under an anchored tree head yet; retry later")
    elif not index < tree_size <= _log_size(services, tree_size):
        # Schema-valid but not a tree this entry is in: a missing resource (404), not a malformed request.
        raise NotFound(f"entry {index} is not in a tree of size {tree_size} (the log has {size} entries)")
    head = heads.get(tree_size)
    return AccessEntryProof(
        index=index,
        entry=entry.document(),
        leaf_hash=services.access_log.leaf_hash(index).hex(),
        tree_size=tree_size,
        root=services.access_log.root(tree_size).hex(),
        inclusion_path=encode_proof(services.access_log.inclusion_proof(index, tree_size)),
        head=_head(head) if head is not None else None,
    )


@router.get(
    "/access-log/consistency",
    response_model=ConsistencyProof,
    summary="RFC 9162 consistency proof between two anchored tree heads",
    responses=problem_responses(401, 404, 422, 503, descriptions={
        404: "A size is not the size of an anchored tree head",
        422: "Invalid request, or from_size > to_size",
    }),
)  # fmt: skip
def access_log_consistency(
    org_id: CurrentOrg,
    services: Services,
    from_size: Annotated[int, Query(ge=1, le=_MAX_INDEX)],
    to_size: Annotated[int, Query(ge=1, le=_MAX_INDEX)],
) -> ConsistencyProof:
    del org_id
    heads = {row.size: row for row in _anchored_heads(services)}
    for name, value in (("from_size", from_size), ("to_size", to_size)):
        if value not in heads:
            raise NotFound(f"no anchored tree head of size {value} ({name}; see GET /v1/access-log/heads)")
    if from_size > to_size:
        raise InvalidRecord(f"from_size {from_size} is larger than to_size {to_size}")
    if _log_size(services, to_size) < to_size:
        raise Unavailable(f"the access log has fewer than {to_size} entries in this gateway's database")
    return ConsistencyProof(
        from_size=from_size,
        to_size=to_size,
        from_root=heads[from_size].root,
        to_root=heads[to_size].root,
        proof=encode_proof(services.access_log.consistency_proof(from_size, to_size)),
    )
