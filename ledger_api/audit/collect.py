"""Gather the evidence from any JSON-RPC node and the shared blob storage, nothing else.

Chain facts come from events (``eth_getLogs``) and from state the contracts keep for history
(``AccessLogAnchors.headAt``), read at the latest block, plus block headers for timestamps: no archive
state (``eth_call`` at an old block) is ever needed, so a pruning production node serves an audit.
Organisations, suspensions and grants are replayed by :class:`~ledger_api.chain.follower.ChainFollower`
(the same event replay the gateway's access check uses); ``BatchAnchored`` receipts by
:func:`~ledger_api.chain.events.iter_events`. Everything is cut at one checkpoint block.

Storage facts: one pass over every key, reading the bytes without trusting them (``verify=False``; the
verifier compares hashes and names the difference); record blobs are recognised by their cleartext
header (``LDGR``), access-log segments (``LDAS``) are opened with the auditor's HPKE key and chained
into the log by :func:`~ledger_api.accesslog.audit.verify_log` against the anchored heads, and
manifests are the JSON objects the receipts name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ledger_api.accesslog.audit import verify_log
from ledger_api.accesslog.entry import Entry
from ledger_api.accesslog.errors import AccessLogError
from ledger_api.accesslog.segment import OpenedSegment, is_segment, open_segment
from ledger_api.audit.errors import SourceUnavailable
from ledger_api.audit.evidence import (
    AnchorReceipt,
    BlobObservation,
    ChainFacts,
    Evidence,
    HeadReceipt,
    OrganisationHistory,
    StorageFacts,
)
from ledger_api.audit.model import AdminGrantAction, GrantFact, SignerChangeStep
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.encoding import checksum_address
from ledger_api.chain.errors import ChainError
from ledger_api.chain.events import DecodedEvent, iter_events
from ledger_api.chain.follower import ChainFollower
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.tree_heads import ChainTreeHead, TreeHeadReader
from ledger_api.crypto.envelope import BLOB_MAGIC, parse_blob
from ledger_api.crypto.errors import EnvelopeError
from ledger_api.records.leaves import BatchManifest
from ledger_api.storage.base import BlobReader
from ledger_api.storage.errors import BlobNotFound, StorageError

__all__ = [
    "AuditorKey",
    "BlobReader",
    "checked_blocks",
    "collect_chain",
    "collect_evidence",
    "collect_storage",
    "fetch_block_times",
]


@dataclass(frozen=True, kw_only=True)
class AuditorKey:
    """The auditor organisation's HPKE private key (encoded with its KEM id) that segments are sealed for."""

    org_id: str
    key_index: int = 0
    private_key: bytes = field(repr=False)


def _code(value: bytes) -> str:
    return bytes(value).rstrip(b"\x00").decode("ascii", errors="replace")


def collect_chain(*, rpc: JsonRpc, deployment: Deployment) -> ChainFacts:
    """Organisations, grants, batch anchors and tree heads up to the node's current block (the checkpoint)."""
    try:
        follower = ChainFollower(rpc=rpc, deployment=deployment)
        checkpoint = follower.sync()
        header = rpc.block(checkpoint)
        if header is None:
            raise SourceUnavailable(f"the node has no block {checkpoint}")
        organisations, grants = _organisations_and_grants(follower)
        receipts = _batch_receipts(rpc, deployment, checkpoint)
        admin_grants = _admin_grant_actions(rpc, deployment, checkpoint)
        signer_changes = _signer_change_steps(rpc, deployment, checkpoint)
        reader = TreeHeadReader(rpc=rpc, address=deployment.address("AccessLogAnchors"))
        heads = tuple(
            HeadReceipt(
                index=h.index, size=h.size, root=h.root.hex(), block_number=h.block_number, timestamp=h.timestamp
            )
            for h in reader.heads()
            if h.block_number <= checkpoint
        )
        block_times = {h.block_number: h.timestamp for h in heads}
        block_times[checkpoint] = int(header["timestamp"], 16)
        # Revocation blocks too: their times show whether a read was decided on a head older than a
        # revocation mined before the read was released (DESIGN.md invariant 6).
        needed = {r.block_number for r in receipts} | {g.revoked_block for g in grants if g.revoked_block}
        needed |= {a.block_number for a in admin_grants} | {s.block_number for s in signer_changes}
        block_times.update(fetch_block_times(rpc, needed - set(block_times)))
        admin_grants = tuple(dataclasses.replace(a, timestamp=block_times.get(a.block_number)) for a in admin_grants)
        signer_changes = tuple(
            dataclasses.replace(s, timestamp=block_times.get(s.block_number)) for s in signer_changes
        )
    except ChainError as exc:
        raise SourceUnavailable(f"cannot read the chain at {rpc.url}: {exc}") from exc
    return ChainFacts(
        chain_id=deployment.chain_id,
        checkpoint_block=checkpoint,
        checkpoint_hash=str(header["hash"]),
        deployment_block=deployment.block_number,
        addresses=dict(deployment.addresses),
        organisations=organisations,
        grants=grants,
        receipts=receipts,
        heads=heads,
        block_times=block_times,
        admin_grants=admin_grants,
        signer_changes=signer_changes,
        communities={org.org_id: org.community_history for org in follower.organisations()},
    )


def _organisations_and_grants(
    follower: ChainFollower,
) -> tuple[tuple[OrganisationHistory, ...], tuple[GrantFact, ...]]:
    """Every organisation with its suspensions, and every grant by id, as the follower replayed them."""
    organisations: list[OrganisationHistory] = []
    grants: dict[int, GrantFact] = {}
    for org in follower.organisations():
        organisations.append(
            OrganisationHistory(
                org_id=org.org_id,
                kind=org.kind.name.lower(),
                registered_block=org.registered_block,
                suspensions=tuple(follower.suspension_history(org.org_id)),
            )
        )
        for grant in follower.grants_for(org.org_id):
            spec = grant.spec
            grants[grant.grant_id] = GrantFact(
                grant_id=grant.grant_id,
                owner_org=spec.owner_org,
                grantee_org=spec.grantee_org,
                purpose=spec.purpose.label,
                record_types=tuple(spec.record_types),
                communities=tuple(spec.communities),
                record_id=spec.record_id,
                valid_from=spec.valid_from,
                valid_until=spec.valid_until,
                created_block=grant.created_block,
                revoked_block=grant.revoked_block,
            )
    return tuple(organisations), tuple(sorted(grants.values(), key=lambda g: g.grant_id))


def _events(
    rpc: JsonRpc, deployment: Deployment, checkpoint: int, contract: str, names: tuple[str, ...]
) -> Iterator[DecodedEvent]:
    """The named events of a deployed contract from its deployment to the checkpoint, in chain order."""
    return iter_events(
        rpc,
        contract=contract,
        address=deployment.address(contract),
        from_block=deployment.block_number,
        to_block=checkpoint,
        names=names,
    )


def _batch_receipts(rpc: JsonRpc, deployment: Deployment, checkpoint: int) -> tuple[AnchorReceipt, ...]:
    """Every ``BatchAnchored`` event up to the checkpoint, in chain order."""
    return tuple(
        AnchorReceipt(
            sequence=int(event.args["sequence"]),
            owner_org=_code(event.args["ownerOrg"]),
            root=bytes(event.args["root"]).hex(),
            size=int(event.args["size"]),
            manifest_hash=bytes(event.args["manifestHash"]).hex(),
            block_number=event.block_number,
            transaction=event.transaction_hash,
            log_index=event.log_index,
        )
        for event in _events(rpc, deployment, checkpoint, "RecordAnchors", ("BatchAnchored",))
    )


def _admin_grant_actions(rpc: JsonRpc, deployment: Deployment, checkpoint: int) -> tuple[AdminGrantAction, ...]:
    """Every grant an organisation admin created or revoked for an owner (``byAdmin``), in chain order."""
    return tuple(
        AdminGrantAction(
            grant_id=int(event.args["grantId"]),
            action="created" if event.name == "GrantCreated" else "revoked",
            owner_org=_code(event.args["ownerOrg"]),
            grantee_org=_code(event.args["granteeOrg"]),
            by=checksum_address(event.args["grantedBy" if event.name == "GrantCreated" else "revokedBy"]),
            block_number=event.block_number,
            transaction=event.transaction_hash,
            log_index=event.log_index,
        )
        for event in _events(rpc, deployment, checkpoint, "GrantRegistry", ("GrantCreated", "GrantRevoked"))
        if event.args["byAdmin"]
    )


_SIGNER_STEPS = {
    "OrganisationSignerChangeProposed": "proposed",
    "OrganisationSignerChangeAccepted": "accepted",
    "OrganisationSignerChangeCancelled": "cancelled",
    "OrganisationSignerChanged": "changed",
}


def _signer_change_steps(rpc: JsonRpc, deployment: Deployment, checkpoint: int) -> tuple[SignerChangeStep, ...]:
    """Every step of every signer change, in chain order. The ``changed`` event names no actor: its
    transaction's sender is who made it take effect (receipts, like headers, are kept by pruning nodes)."""
    steps = []
    for event in _events(rpc, deployment, checkpoint, "OrganisationRegistry", tuple(_SIGNER_STEPS)):
        a = event.args
        step = _SIGNER_STEPS[event.name]
        if step == "changed":
            receipt = rpc.receipt(event.transaction_hash)
            by = _address(receipt["from"]) if receipt else ""
        else:
            by = _address(a.get("proposedBy") or a.get("acceptedBy") or a.get("cancelledBy"))
        steps.append(
            SignerChangeStep(
                org_id=_code(a["orgId"]),
                step=step,
                by=by,
                new_signer=_address(a.get("newSigner")),
                previous_signer=_address(a.get("currentSigner") or a.get("previousSigner")),
                effective_at=int(a["effectiveAt"]) if "effectiveAt" in a else None,
                block_number=event.block_number,
                transaction=event.transaction_hash,
                log_index=event.log_index,
            )
        )
    return tuple(steps)


def _address(value: object) -> str:
    return checksum_address(str(value)) if value else ""


def fetch_block_times(rpc: JsonRpc, blocks: Iterable[int]) -> dict[int, int]:
    """Timestamps of ``blocks`` from their headers (headers are never pruned)."""
    times: dict[int, int] = {}
    for number in sorted(set(blocks)):
        header = rpc.block(number)
        if header is not None:
            times[number] = int(header["timestamp"], 16)
    return times


def collect_storage(
    store: BlobReader, *, heads: Sequence[HeadReceipt], manifest_keys: Iterable[str], auditor: AuditorKey
) -> StorageFacts:
    """One pass over storage: observations of record blobs, the named manifests, the rebuilt access log."""
    wanted = set(manifest_keys)
    manifests: dict[str, bytes] = {}
    blobs: list[BlobObservation] = []
    segments: list[OpenedSegment] = []
    problems: list[str] = []
    try:
        for key in store.iter_keys():
            try:
                data = store.get(key, verify=False)
            except BlobNotFound:
                continue  # deleted while walking
            digest = hashlib.sha256(data).hexdigest()
            if data[: len(BLOB_MAGIC)] == BLOB_MAGIC:
                blobs.append(_record_observation(key, digest, data))
            elif is_segment(data):
                blobs.append(BlobObservation(key=key, sha256=digest, kind="segment"))
                _open_segment(key, data, auditor, segments, problems)
            elif key in wanted or BatchManifest.looks_like_manifest(data):
                manifests[key] = data
            elif digest != key:
                # Bytes of no known kind under a key they do not hash to: a damaged blob of some kind.
                blobs.append(BlobObservation(key=key, sha256=digest, kind="unknown"))
        for key in wanted - set(manifests):
            with contextlib.suppress(BlobNotFound):  # when absent, the verifier names it: manifest-missing
                manifests[key] = store.get(key, verify=False)
    except StorageError as exc:
        raise SourceUnavailable(f"cannot read the blob storage: {exc}") from exc
    chain_heads = [
        ChainTreeHead(
            index=h.index, size=h.size, root=bytes.fromhex(h.root), block_number=h.block_number, timestamp=h.timestamp
        )
        for h in sorted(heads, key=lambda h: h.index)
    ]
    log = verify_log(chain_heads, segments)
    return StorageFacts(
        manifests=manifests,
        blobs=tuple(blobs),
        entries=log.leaf_data,
        log_problems=tuple(problems) + log.problems,
    )


def _open_segment(
    key: str, data: bytes, auditor: AuditorKey, segments: list[OpenedSegment], problems: list[str]
) -> None:
    """Open an access-log segment with the auditor's key into ``segments``, or name why not in ``problems``."""
    try:
        segments.append(
            open_segment(
                data,
                org_id=auditor.org_id,
                key_index=auditor.key_index,
                private_key=auditor.private_key,
                expected_key=key,
            )
        )
    except AccessLogError as exc:
        problems.append(f"segment {key}: {exc}")


def _record_observation(key: str, digest: str, data: bytes) -> BlobObservation:
    try:
        parsed = parse_blob(data)
    except EnvelopeError:
        # A record blob whose framing is broken: only its hash can be compared with an anchor.
        return BlobObservation(key=key, sha256=digest, kind="record")
    header = parsed.header
    return BlobObservation(
        key=key,
        sha256=digest,
        kind="shredded" if parsed.shredded else "record",
        record_id=header.record_id,
        version=header.version,
        owner_org=header.owner_org,
    )


def checked_blocks(entries: Iterable[bytes]) -> set[int]:
    """The blocks the entries' grant checks were evaluated at (unparseable entries are skipped)."""
    blocks: set[int] = set()
    for data in entries:
        try:
            blocks.add(Entry.from_leaf_data(data).checked_block)
        except AccessLogError:
            continue
    return blocks


def collect_evidence(
    *, rpc: JsonRpc, deployment: Deployment, store: BlobReader, auditor: AuditorKey, storage_label: str = "storage"
) -> Evidence:
    """Chain facts at the node's current block, then storage, then the timestamps the reads need."""
    chain = collect_chain(rpc=rpc, deployment=deployment)
    storage = collect_storage(
        store, heads=chain.heads, manifest_keys={r.manifest_hash for r in chain.receipts}, auditor=auditor
    )
    checked = checked_blocks(storage.entries)
    # The block after each checked block too: its time bounds when that check can have been made (the
    # verifier's back-dating rule, ``entry-backdated``).
    following = {block + 1 for block in checked if block < chain.checkpoint_block}
    missing = (checked | following) - set(chain.block_times)
    if missing:
        try:
            extra = fetch_block_times(rpc, missing)
        except ChainError as exc:
            raise SourceUnavailable(f"cannot read block headers from {rpc.url}: {exc}") from exc
        chain = dataclasses.replace(chain, block_times={**chain.block_times, **extra})
    return Evidence(chain=chain, storage=storage, source=f"chain {rpc.url} + {storage_label}")
