"""The audit bundle: the whole evidence of an audit in one file, checkable with no network at all.

Format ``ledger-audit-bundle/v3`` (``v2`` bundles, without the community histories, and ``v1`` bundles,
without the two admin sections either, still read): a gzip
stream of UTF-8 text lines (RFC 1952 gzip; JSON per RFC 8259, ASCII only)::

    line 0    the header: {"format", "chain_id", "checkpoint_block", "checkpoint_hash", "deployment_block",
              "addresses", "exported_at", "source", "evidence": {"header": D, "sections": {name: D}, "root": R}}
    line 1..  one section per line: ``<name> <JSON>``, in the order of :data:`SECTIONS`

Sections (JSON arrays of arrays, hex strings without ``0x``):

* ``organisations`` ``[org_id, kind, registered_block, [[block, suspended], …]]`` (suspension history)
* ``grants`` ``[grant_id, owner, grantee, purpose, [types], [communities], record_id|null, valid_from,
  valid_until, created_block, revoked_block]`` (grant history, from ``GrantCreated``/``GrantRevoked``)
* ``receipts`` ``[sequence, owner, root, size, manifest_hash, block, tx, log_index]`` (``BatchAnchored``)
* ``tree_heads`` ``[index, size, root, block, timestamp]`` (anchored access-log heads)
* ``block_times`` ``[block, timestamp]``
* ``manifests`` ``[key, manifest text]`` (the exact bytes, so their SHA-256 is checked against the anchor)
* ``blobs`` ``[key, sha256 of the bytes seen, kind, record_id, version, owner]`` (observations at export)
* ``entries`` ``[leaf data text, …]`` (the access log's entries, in order, from entry 0)
* ``log_problems`` ``[text, …]`` (segments the exporter could not read or chain)
* ``admin_grants`` (v2) ``[grant_id, "created"|"revoked", owner, grantee, admin address, block, tx, log_index,
  timestamp]`` (``GrantCreated``/``GrantRevoked`` with ``byAdmin``)
* ``signer_changes`` (v2) ``[org_id, step, by, new_signer, previous_signer, effective_at|null, block, tx,
  log_index, timestamp]`` (the ``OrganisationSignerChange*`` / ``OrganisationSignerChanged`` events)
* ``communities`` (v3) ``[org_id, [[block, [codes]], …]]`` (the community codes each organisation served,
  from ``OrganisationRegistered`` / ``OrganisationCommunitiesChanged``: what a break-glass read may reach)

Evidence digests: ``D`` = SHA-256 of a section's JSON text exactly as written (and of the header's
canonical JSON without ``evidence``); ``R`` = the RFC 9162 root over the leaves ``"<name>:<D>"``
(header first, then the sections of the bundle's format in order). Reading a bundle recomputes them; a
section whose text does not match its digest is reported as ``evidence-mismatch`` naming that section,
and then checked as it is, so what it breaks is named too.

What verification of a bundle proves, offline: that the bundle is internally consistent: every
manifest hashes to the manifest hash its receipt names and rebuilds the anchored root and size; every
anchored leaf has a blob observation with the anchored hash; the entries rebuild every anchored tree
head and the heads are consistent with each other; every read was covered by the grant history as
the bundle gives it. It detects any partial edit (a flipped blob, a removed or reordered entry, a
changed grant or head) because the sections are bound to each other and to the digests.

What it cannot prove: that the chain facts are the chain's. A forger who rewrites the chain facts and
recomputes every dependent section and digest consistently produces a bundle that verifies offline;
the digests are not signatures. Run ``ledger audit verify --bundle FILE --rpc URL`` to compare the
bundle's chain facts (organisations, grants, receipts, tree heads, the checkpoint block's hash) with
any node: a difference is ``evidence-mismatch``. The blob observations are likewise the exporter's word
(re-check storage itself with ``ledger audit verify`` without ``--bundle``).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger_api.audit.errors import BundleUnreadable
from ledger_api.audit.evidence import (
    AnchorReceipt,
    BlobObservation,
    ChainFacts,
    Evidence,
    HeadReceipt,
    OrganisationHistory,
    StorageFacts,
)
from ledger_api.audit.model import AdminGrantAction, Discrepancy, DiscrepancyKind, GrantFact, SignerChangeStep
from ledger_api.merkle import leaf_hash, root_from_leaf_hashes

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_V1",
    "BUNDLE_FORMAT_V2",
    "SECTIONS",
    "BundleDocument",
    "cross_check",
    "decode_bundle",
    "encode_bundle",
    "read_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "ledger-audit-bundle/v3"
BUNDLE_FORMAT_V2 = "ledger-audit-bundle/v2"
BUNDLE_FORMAT_V1 = "ledger-audit-bundle/v1"
SECTIONS_V1 = (
    "organisations",
    "grants",
    "receipts",
    "tree_heads",
    "block_times",
    "manifests",
    "blobs",
    "entries",
    "log_problems",
)
ADMIN_SECTIONS = ("admin_grants", "signer_changes")
SECTIONS_V2 = (*SECTIONS_V1, *ADMIN_SECTIONS)
COMMUNITY_SECTIONS = ("communities",)
SECTIONS = (*SECTIONS_V2, *COMMUNITY_SECTIONS)
CHAIN_SECTIONS = ("organisations", "grants", "receipts", "tree_heads")
_FORMATS = {BUNDLE_FORMAT: SECTIONS, BUNDLE_FORMAT_V2: SECTIONS_V2, BUNDLE_FORMAT_V1: SECTIONS_V1}


def _sections_of(header: dict[str, Any]) -> tuple[str, ...]:
    """The sections a bundle of the header's format holds, in order (the digests cover exactly these)."""
    return _FORMATS.get(str(header.get("format")), SECTIONS)


def _text(data: bytes) -> str:
    # Manifests and entries are UTF-8 JSON; damaged bytes survive the round trip as escaped surrogates.
    return data.decode("utf-8", errors="surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --- evidence <-> sections ------------------------------------------------------------------------------


def _sections(evidence: Evidence) -> dict[str, Any]:
    chain, storage = evidence.chain, evidence.storage
    return {
        "organisations": [
            [o.org_id, o.kind, o.registered_block, [list(s) for s in o.suspensions]] for o in chain.organisations
        ],
        "grants": [
            [
                g.grant_id,
                g.owner_org,
                g.grantee_org,
                g.purpose,
                list(g.record_types),
                list(g.communities),
                g.record_id,
                g.valid_from,
                g.valid_until,
                g.created_block,
                g.revoked_block,
            ]
            for g in chain.grants
        ],
        "receipts": [
            [r.sequence, r.owner_org, r.root, r.size, r.manifest_hash, r.block_number, r.transaction, r.log_index]
            for r in chain.receipts
        ],
        "tree_heads": [[h.index, h.size, h.root, h.block_number, h.timestamp] for h in chain.heads],
        "block_times": [[b, t] for b, t in sorted(chain.block_times.items())],
        "manifests": [[k, _text(v)] for k, v in sorted(storage.manifests.items())],
        "blobs": [[o.key, o.sha256, o.kind, o.record_id, o.version, o.owner_org] for o in storage.blobs],
        "entries": [_text(e) for e in storage.entries],
        "log_problems": list(storage.log_problems),
        "admin_grants": [
            [a.grant_id, a.action, a.owner_org, a.grantee_org, a.by, a.block_number, a.transaction, a.log_index,
             a.timestamp]
            for a in chain.admin_grants
        ],
        "signer_changes": [
            [c.org_id, c.step, c.by, c.new_signer, c.previous_signer, c.effective_at, c.block_number, c.transaction,
             c.log_index, c.timestamp]
            for c in chain.signer_changes
        ],
        "communities": [
            [org_id, [[block, list(codes)] for block, codes in history]]
            for org_id, history in sorted(chain.communities.items())
        ],
    }  # fmt: skip


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _header(evidence: Evidence, exported_at: datetime) -> dict[str, Any]:
    chain = evidence.chain
    return {
        "format": BUNDLE_FORMAT,
        "chain_id": chain.chain_id,
        "checkpoint_block": chain.checkpoint_block,
        "checkpoint_hash": chain.checkpoint_hash,
        "deployment_block": chain.deployment_block,
        "addresses": dict(sorted(chain.addresses.items())),
        "exported_at": exported_at.astimezone(UTC).isoformat(),
        "source": evidence.source,
    }


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "organisations": lambda rows: tuple(
        OrganisationHistory(
            org_id=str(o), kind=str(k), registered_block=int(b), suspensions=tuple((int(x), bool(y)) for x, y in s)
        )
        for o, k, b, s in rows
    ),
    "grants": lambda rows: tuple(
        GrantFact(
            grant_id=int(g),
            owner_org=str(o),
            grantee_org=str(e),
            purpose=str(p),
            record_types=tuple(map(str, t)),
            communities=tuple(map(str, c)),
            record_id=None if r is None else str(r),
            valid_from=int(f),
            valid_until=int(u),
            created_block=int(cb),
            revoked_block=int(rb),
        )
        for g, o, e, p, t, c, r, f, u, cb, rb in rows
    ),
    "receipts": lambda rows: tuple(
        AnchorReceipt(
            sequence=int(s),
            owner_org=str(o),
            root=str(r),
            size=int(n),
            manifest_hash=str(m),
            block_number=int(b),
            transaction=str(t),
            log_index=int(i),
        )
        for s, o, r, n, m, b, t, i in rows
    ),
    "tree_heads": lambda rows: tuple(
        HeadReceipt(index=int(i), size=int(n), root=str(r), block_number=int(b), timestamp=int(t))
        for i, n, r, b, t in rows
    ),
    "block_times": lambda rows: {int(b): int(t) for b, t in rows},
    "manifests": lambda rows: {str(k): _bytes(v) for k, v in rows},
    "blobs": lambda rows: tuple(
        BlobObservation(key=str(k), sha256=str(h), kind=str(kd), record_id=str(r), version=int(v), owner_org=str(o))
        for k, h, kd, r, v, o in rows
    ),
    "entries": lambda rows: tuple(_bytes(str(e)) for e in rows),
    "log_problems": lambda rows: tuple(str(p) for p in rows),
    "admin_grants": lambda rows: tuple(
        AdminGrantAction(
            grant_id=int(g), action=str(a), owner_org=str(o), grantee_org=str(e), by=str(by), block_number=int(b),
            transaction=str(t), log_index=int(i), timestamp=_optional_int(ts),
        )
        for g, a, o, e, by, b, t, i, ts in rows
    ),
    "signer_changes": lambda rows: tuple(
        SignerChangeStep(
            org_id=str(o), step=str(st), by=str(by), new_signer=str(n), previous_signer=str(p),
            effective_at=_optional_int(at), block_number=int(b), transaction=str(t), log_index=int(i),
            timestamp=_optional_int(ts),
        )
        for o, st, by, n, p, at, b, t, i, ts in rows
    ),
    "communities": lambda rows: {
        str(o): tuple((int(b), tuple(map(str, codes))) for b, codes in history) for o, history in rows
    },
}  # fmt: skip


# --- the file -----------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class BundleDocument:
    """A bundle's header and section texts, as written: what :func:`decode_bundle` checks (and what tests
    tamper with)."""

    header: dict[str, Any]
    texts: dict[str, str] = field(repr=False)

    def section(self, name: str) -> Any:
        return json.loads(self.texts[name])

    def set_section(self, name: str, value: object, *, reseal: bool = False) -> None:
        """Replace a section; with ``reseal`` also its digest and the root (what a forger would do)."""
        self.texts[name] = _json(value)
        if reseal:
            self.reseal()

    def reseal(self) -> None:
        """Recompute every digest and the root from the current header and sections."""
        self.header["evidence"] = _evidence(self.header, self.texts)

    def encode(self) -> bytes:
        lines = [_json(self.header)] + [f"{name} {self.texts[name]}" for name in _sections_of(self.header)]
        return gzip.compress(("\n".join(lines) + "\n").encode("ascii"), compresslevel=6, mtime=0)

    @classmethod
    def decode(cls, data: bytes) -> BundleDocument:
        try:
            text = gzip.decompress(data).decode("ascii")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise BundleUnreadable(f"not an audit bundle (gzip of ASCII lines): {exc}") from None
        lines = text.split("\n")
        try:
            header = json.loads(lines[0])
        except ValueError as exc:
            raise BundleUnreadable(f"the bundle's header is not JSON: {exc}") from None
        if not isinstance(header, dict) or header.get("format") not in _FORMATS:
            raise BundleUnreadable(f"not a {BUNDLE_FORMAT_V1} bundle, nor a {BUNDLE_FORMAT_V2} or {BUNDLE_FORMAT} one")
        sections = _sections_of(header)
        texts: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, body = line.partition(" ")
            if name not in sections or name in texts:
                raise BundleUnreadable(f"unknown or repeated section {name[:40]!r}")
            texts[name] = body
        for name in sections:
            texts.setdefault(name, "[]")
        return cls(header=header, texts=texts)


def _header_digest(header: dict[str, Any]) -> str:
    return _sha256(_json({k: v for k, v in header.items() if k != "evidence"}))


def _evidence(header: dict[str, Any], texts: dict[str, str]) -> dict[str, Any]:
    sections = _sections_of(header)
    digests = {name: _sha256(texts[name]) for name in sections}
    header_digest = _header_digest(header)
    return {"header": header_digest, "sections": digests, "root": _root(header_digest, digests, sections)}


def _root(header_digest: str, digests: dict[str, str], sections: tuple[str, ...]) -> str:
    leaves = [f"header:{header_digest}"] + [f"{name}:{digests.get(name, '')}" for name in sections]
    return root_from_leaf_hashes([leaf_hash(leaf.encode("ascii")) for leaf in leaves]).hex()


def encode_bundle(evidence: Evidence, *, exported_at: datetime | None = None) -> bytes:
    texts = {name: _json(value) for name, value in _sections(evidence).items()}
    document = BundleDocument(header=_header(evidence, exported_at or datetime.now(UTC)), texts=texts)
    document.reseal()
    return document.encode()


def write_bundle(evidence: Evidence, path: Path, *, exported_at: datetime | None = None) -> int:
    """Write the bundle (atomically: temp file, then rename); returns its size in bytes."""
    data = encode_bundle(evidence, exported_at=exported_at)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def _check_digests(document: BundleDocument, mismatch: Callable[[str, str], None]) -> None:
    """Name the header, each section and the root that differ from the evidence digests recorded."""
    recorded = document.header.get("evidence")
    if not isinstance(recorded, dict):
        mismatch("bundle header", "the bundle carries no evidence digests")
        recorded = {}
    computed = _evidence(document.header, document.texts)
    sections = _sections_of(document.header)
    if recorded.get("header") != computed["header"]:
        mismatch("bundle header", "the header differs from what its evidence digest commits to")
    sections_field = recorded.get("sections")
    recorded_sections: dict[str, str] = sections_field if isinstance(sections_field, dict) else {}
    for name in sections:
        if recorded_sections.get(name) != computed["sections"][name]:
            mismatch(f"bundle section {name}", "the section differs from what its evidence digest commits to")
    if recorded.get("root") != _root(str(recorded.get("header")), recorded_sections, sections):
        mismatch("bundle evidence", "the evidence root does not commit to the section digests")


def decode_bundle(data: bytes, *, source: str = "bundle") -> tuple[Evidence, list[Discrepancy]]:
    """The evidence in a bundle and the discrepancies of the bundle itself (digests, malformed sections)."""
    document = BundleDocument.decode(data)
    found: list[Discrepancy] = []

    def mismatch(subject: str, detail: str) -> None:
        found.append(Discrepancy(kind=DiscrepancyKind.EVIDENCE_MISMATCH, subject=subject, detail=detail, where=source))

    _check_digests(document, mismatch)
    sections = _sections_of(document.header)
    values: dict[str, Any] = {name: _PARSERS[name]([]) for name in (*ADMIN_SECTIONS, *COMMUNITY_SECTIONS)}
    for name in sections:
        try:
            values[name] = _PARSERS[name](json.loads(document.texts[name]))
        except (ValueError, TypeError, KeyError) as exc:
            mismatch(f"bundle section {name}", f"the section is malformed: {type(exc).__name__}: {exc}")
            values[name] = _PARSERS[name]([])
    header = document.header
    try:
        chain = ChainFacts(
            chain_id=int(header["chain_id"]),
            checkpoint_block=int(header["checkpoint_block"]),
            checkpoint_hash=str(header["checkpoint_hash"]),
            deployment_block=int(header["deployment_block"]),
            addresses={str(k): str(v) for k, v in dict(header["addresses"]).items()},
            organisations=values["organisations"],
            grants=values["grants"],
            receipts=values["receipts"],
            heads=values["tree_heads"],
            block_times=values["block_times"],
            admin_grants=values["admin_grants"],
            signer_changes=values["signer_changes"],
            admin_events_known=set(ADMIN_SECTIONS) <= set(sections),
            communities=values["communities"],
            communities_known=set(COMMUNITY_SECTIONS) <= set(sections),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleUnreadable(f"the bundle's header is incomplete: {exc}") from None
    storage = StorageFacts(
        manifests=values["manifests"],
        blobs=values["blobs"],
        entries=values["entries"],
        log_problems=values["log_problems"],
    )
    return Evidence(chain=chain, storage=storage, source=source), found


def read_bundle(path: Path) -> tuple[Evidence, list[Discrepancy]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_bundle(data, source=f"bundle {path}")


# --- cross-check with a node ----------------------------------------------------------------------------


def _as_of(chain: ChainFacts, block: int) -> dict[str, list[str]]:
    """The chain sections as they stood at ``block`` (later events dropped), as comparable rows."""
    evidence = Evidence(
        chain=ChainFacts(
            chain_id=chain.chain_id,
            checkpoint_block=block,
            checkpoint_hash="",
            deployment_block=chain.deployment_block,
            addresses=chain.addresses,
            organisations=tuple(
                OrganisationHistory(
                    org_id=o.org_id,
                    kind=o.kind,
                    registered_block=o.registered_block,
                    suspensions=tuple(s for s in o.suspensions if s[0] <= block),
                )
                for o in chain.organisations
                if o.registered_block <= block
            ),
            grants=tuple(
                dataclasses.replace(g, revoked_block=g.revoked_block if 0 < g.revoked_block <= block else 0)
                for g in chain.grants
                if g.created_block <= block
            ),
            receipts=tuple(r for r in chain.receipts if r.block_number <= block),
            heads=tuple(h for h in chain.heads if h.block_number <= block),
            block_times={},
            admin_grants=tuple(a for a in chain.admin_grants if a.block_number <= block),
            signer_changes=tuple(c for c in chain.signer_changes if c.block_number <= block),
            communities={
                org_id: tuple(step for step in history if step[0] <= block)
                for org_id, history in chain.communities.items()
                if history and history[0][0] <= block
            },
        ),
        storage=StorageFacts(manifests={}, blobs=(), entries=()),
        source="",
    )
    sections = _sections(evidence)
    return {
        name: sorted(_json(row) for row in sections[name])
        for name in (*CHAIN_SECTIONS, *ADMIN_SECTIONS, *COMMUNITY_SECTIONS)
    }


def cross_check(bundle: Evidence, node: ChainFacts, *, url: str, node_checkpoint_hash: str | None) -> list[Discrepancy]:
    """Compare a bundle's chain facts with what a node says as of the bundle's checkpoint block."""
    found: list[Discrepancy] = []
    where = f"{bundle.source} vs {url}"

    def mismatch(subject: str, detail: str) -> None:
        found.append(Discrepancy(kind=DiscrepancyKind.EVIDENCE_MISMATCH, subject=subject, detail=detail, where=where))

    block = bundle.chain.checkpoint_block
    if bundle.chain.chain_id != node.chain_id:
        mismatch("bundle header", f"chain id {bundle.chain.chain_id}, the node's is {node.chain_id}")
    if node_checkpoint_hash is None:
        mismatch("bundle header", f"the node has no block {block} (the bundle's checkpoint)")
    elif node_checkpoint_hash != bundle.chain.checkpoint_hash:
        mismatch(
            "bundle header",
            f"block {block} is {node_checkpoint_hash} on the node, {bundle.chain.checkpoint_hash} in the bundle",
        )
    mine, theirs = _as_of(bundle.chain, block), _as_of(node, block)
    # A v1 bundle holds no admin actions, a v2 one no community histories: nothing to compare them with.
    compared = (
        *CHAIN_SECTIONS,
        *(ADMIN_SECTIONS if bundle.chain.admin_events_known else ()),
        *(COMMUNITY_SECTIONS if bundle.chain.communities_known else ()),
    )
    for name in compared:
        only_bundle = sorted(set(mine[name]) - set(theirs[name]))
        only_node = sorted(set(theirs[name]) - set(mine[name]))
        if only_bundle or only_node:
            sample = (only_bundle or only_node)[0]
            mismatch(
                f"bundle section {name}",
                f"{len(only_bundle)} row(s) not on the chain and {len(only_node)} on the chain not in the bundle "
                f"(e.g. {'bundle' if only_bundle else 'chain'} {sample})",
            )
    return found
