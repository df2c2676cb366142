"""The anchor leaf of a record version and the manifest of a batch.

The leaf encoding is the one ``RecordAnchors.recordLeafHash`` computes on chain (see
``contracts/interfaces/IRecordAnchors.sol``): ``uint8(1) || recordId || uint32 version || ownerOrg ||
ciphertextHash || commitment``, hashed as an RFC 9162 leaf. A batch manifest lists a batch's leaves in
order so that anyone holding the storage can rebuild the tree and check it against the root on chain.

Manifest format v2 also carries, per leaf, the record's ``record_type``, ``community_code`` and the
keyed blind indexes of its subjects' ID numbers (no plaintext): record blobs are encrypted for their
owner only, and an auditor needs type and community to check a read's scope against its grant. The
manifest's SHA-256 is anchored on chain (``BatchAnchored.manifestHash``), so this metadata is as
tamper-evident as the leaves. Manifests of format v1 (no metadata) are still read: their leaves get
``LeafMetadata()`` (everything unknown).

Format v3 adds, per leaf, the keyed blind indexes of the record's address (kind ``address``), so that an
auditor can count flats registered by several organisations (``ledger audit overlap``) from storage
alone, as it counts people by their ID numbers' indexes. A v2 manifest's leaves have no addresses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ledger_api.merkle.rfc9162 import MerkleTree, leaf_hash

LEAF_VERSION = 1
MANIFEST_FORMAT = "ledger-batch-manifest/v3"
MANIFEST_FORMAT_V2 = "ledger-batch-manifest/v2"
MANIFEST_FORMAT_V1 = "ledger-batch-manifest/v1"
_MANIFEST_FORMATS = (MANIFEST_FORMAT, MANIFEST_FORMAT_V2, MANIFEST_FORMAT_V1)


def _org_bytes32(org_id: str) -> bytes:
    raw = org_id.encode("ascii")
    if not raw or len(raw) > 32:
        raise ValueError(f"organisation id {org_id!r} does not fit in 32 bytes")
    return raw.ljust(32, b"\x00")


@dataclass(frozen=True, kw_only=True)
class RecordLeaf:
    record_id: str
    version: int
    owner_org: str
    ciphertext_hash: str
    commitment: str

    def data(self) -> bytes:
        return (
            bytes([LEAF_VERSION])
            + bytes.fromhex(self.record_id)
            + self.version.to_bytes(4, "big")
            + _org_bytes32(self.owner_org)
            + bytes.fromhex(self.ciphertext_hash)
            + bytes.fromhex(self.commitment)
        )

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.data())


@dataclass(frozen=True, kw_only=True)
class LeafMetadata:
    """What an auditor needs about a leaf's record besides the leaf itself (None/empty: not recorded)."""

    record_type: str | None = None
    community_code: str | None = None
    subjects: tuple[str, ...] = ()
    """Keyed blind indexes (hex HMAC, kind ``id_number``) of the record's subjects' ID numbers."""
    addresses: tuple[str, ...] = ()
    """Keyed blind indexes (hex HMAC, kind ``address``) of the record's address (format v3; empty before)."""


_NO_METADATA = LeafMetadata()


@dataclass(frozen=True, kw_only=True)
class BatchManifest:
    owner_org: str
    leaves: tuple[RecordLeaf, ...]
    metadata: tuple[LeafMetadata, ...] = ()
    """One per leaf, in order; empty for a manifest without metadata (format v1)."""

    def __post_init__(self) -> None:
        if self.metadata and len(self.metadata) != len(self.leaves):
            raise ValueError(f"manifest has {len(self.leaves)} leaves but {len(self.metadata)} metadata entries")

    def metadata_at(self, index: int) -> LeafMetadata:
        return self.metadata[index] if self.metadata else _NO_METADATA

    def tree(self) -> MerkleTree:
        return MerkleTree.from_leaf_hashes(leaf.leaf_hash() for leaf in self.leaves)

    def root(self) -> bytes:
        return self.tree().root()

    def to_bytes(self) -> bytes:
        """Format v3: each leaf is ``[record_id, version, ciphertext_hash, commitment, record_type,
        community_code, [subject blind indexes], [address blind indexes]]`` (type and community ``null``
        when unknown)."""
        leaves = []
        for index, x in enumerate(self.leaves):
            meta = self.metadata_at(index)
            leaves.append([
                x.record_id, x.version, x.ciphertext_hash, x.commitment,
                meta.record_type, meta.community_code, sorted(meta.subjects), sorted(meta.addresses),
            ])  # fmt: skip
        document = {"format": MANIFEST_FORMAT, "owner_org": self.owner_org, "leaves": leaves}
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> BatchManifest:
        """Read a manifest of format v3, v2 or v1; raises ValueError on anything else."""
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not a batch manifest: {exc}") from None
        if not isinstance(document, dict) or document.get("format") not in _MANIFEST_FORMATS:
            raise ValueError("not a batch manifest")
        try:
            owner = str(document["owner_org"])
            leaves: list[RecordLeaf] = []
            metadata: list[LeafMetadata] = []
            for item in document["leaves"]:
                if document["format"] == MANIFEST_FORMAT_V1:
                    r, v, c, m = item
                else:
                    if document["format"] == MANIFEST_FORMAT_V2:
                        (r, v, c, m, record_type, community, subjects), addresses = item, []
                    else:
                        r, v, c, m, record_type, community, subjects, addresses = item
                    metadata.append(
                        LeafMetadata(
                            record_type=None if record_type is None else str(record_type),
                            community_code=None if community is None else str(community),
                            subjects=tuple(map(str, subjects)),
                            addresses=tuple(map(str, addresses)),
                        )
                    )
                leaves.append(
                    RecordLeaf(
                        record_id=str(r), version=int(v), owner_org=owner, ciphertext_hash=str(c), commitment=str(m)
                    )
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed batch manifest: {exc}") from None
        return cls(owner_org=owner, leaves=tuple(leaves), metadata=tuple(metadata))

    @staticmethod
    def looks_like_manifest(data: bytes) -> bool:
        return data[:1] == b"{" and any(f.encode() in data[:200] for f in _MANIFEST_FORMATS)


def batch_of(owner_org: str, leaves: Sequence[RecordLeaf], metadata: Sequence[LeafMetadata] = ()) -> BatchManifest:
    return BatchManifest(owner_org=owner_org, leaves=tuple(leaves), metadata=tuple(metadata))
