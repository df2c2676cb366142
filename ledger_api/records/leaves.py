"""The anchor leaf of a record version and the manifest of a batch.

The leaf encoding is the one ``RecordAnchors.recordLeafHash`` computes on chain (see
``contracts/interfaces/IRecordAnchors.sol``): ``uint8(1) || recordId || uint32 version || ownerOrg ||
ciphertextHash || commitment``, hashed as an RFC 9162 leaf. A batch manifest lists a batch's leaves in
order so that anyone holding the storage can rebuild the tree and check it against the root on chain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ledger_api.merkle.rfc9162 import MerkleTree, leaf_hash

LEAF_VERSION = 1
MANIFEST_FORMAT = "ledger-batch-manifest/v1"


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
class BatchManifest:
    owner_org: str
    leaves: tuple[RecordLeaf, ...]

    def tree(self) -> MerkleTree:
        return MerkleTree.from_leaf_hashes(leaf.leaf_hash() for leaf in self.leaves)

    def root(self) -> bytes:
        return self.tree().root()

    def to_bytes(self) -> bytes:
        document = {
            "format": MANIFEST_FORMAT,
            "owner_org": self.owner_org,
            "leaves": [[x.record_id, x.version, x.ciphertext_hash, x.commitment] for x in self.leaves],
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> BatchManifest:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
            raise ValueError("not a batch manifest")
        owner = str(document["owner_org"])
        leaves = tuple(
            RecordLeaf(record_id=r, version=int(v), owner_org=owner, ciphertext_hash=c, commitment=m)
            for r, v, c, m in document["leaves"]
        )
        return cls(owner_org=owner, leaves=leaves)

    @staticmethod
    def looks_like_manifest(data: bytes) -> bool:
        return data[:1] == b"{" and MANIFEST_FORMAT.encode() in data[:200]


def batch_of(owner_org: str, leaves: Sequence[RecordLeaf]) -> BatchManifest:
    return BatchManifest(owner_org=owner_org, leaves=tuple(leaves))
