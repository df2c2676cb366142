"""RecordAnchors: single anchors and batch roots (write-once per owner organisation, the owner taken from
msg.sender, so no organisation can squat another's record ids or roots), the leaf encoding checked
against SHA-256 in Python, and isRecordAnchored for single anchors and RFC 9162 batches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_api.chain.client import LedgerChain
from ledger_api.merkle import MerkleTree
from tests.contracts.conftest import (
    COMMITTEE,
    POLICE,
    PROPERTY,
    SUSPENDED,
    ZERO32,
    Actors,
    b32,
    call,
    digest,
    reverts,
    single_event,
    transact,
)


def record_leaf(record_id: bytes, version: int, owner: bytes, ciphertext_hash: bytes, commitment: bytes) -> bytes:
    """SHA-256(0x00 || abi.encodePacked(uint8(1), recordId, uint32(version), ownerOrg, ciphertextHash,
    commitment)): the documented leaf, computed independently of any project code."""
    packed = b"\x01" + record_id + version.to_bytes(4, "big") + owner + ciphertext_hash + commitment
    assert len(packed) == 133
    return hashlib.sha256(b"\x00" + packed).digest()


@dataclass(frozen=True)
class Version:
    record_id: bytes
    version: int
    owner: bytes
    ciphertext_hash: bytes
    commitment: bytes

    @classmethod
    def named(cls, name: str, version: int = 1, owner: str = POLICE) -> Version:
        return cls(digest(f"id:{name}"), version, b32(owner), digest(f"ct:{name}:{version}"), digest(f"c:{name}"))

    def leaf(self) -> bytes:
        return record_leaf(self.record_id, self.version, self.owner, self.ciphertext_hash, self.commitment)

    def anchor_args(self) -> tuple[bytes, int, bytes, bytes]:
        return (self.record_id, self.version, self.ciphertext_hash, self.commitment)

    def check_args(self, root: bytes = ZERO32, index: int = 0, proof: list[bytes] | None = None) -> tuple:
        return (
            self.record_id,
            self.version,
            self.owner,
            self.ciphertext_hash,
            self.commitment,
            root,
            index,
            proof or [],
        )


def is_anchored(ledger: LedgerChain, version: Version, **where: object) -> bool:
    return bool(call(ledger, ledger.records.functions.isRecordAnchored(*version.check_args(**where))))  # type: ignore[arg-type]


def anchored_leaf(ledger: LedgerChain, owner: str | bytes, record_id: bytes, version: int) -> bytes:
    """The leaf hash ``owner`` anchored on its own for ``record_id`` ``version`` (zero when none)."""
    owner_id = b32(owner) if isinstance(owner, str) else owner
    return bytes(call(ledger, ledger.records.functions.anchoredLeaf(owner_id, record_id, version)))


def stored_batch(ledger: LedgerChain, owner: str, root: bytes) -> list[object]:
    """``batch(owner, root)`` as ``[ownerOrg, size, blockNumber, sequence]`` (all zero when none)."""
    return list(call(ledger, ledger.records.functions.batch(b32(owner), root)))


# --- leaf encoding -----------------------------------------------------------------------------------


def test_record_leaf_hash_matches_the_documented_encoding(ledger: LedgerChain) -> None:
    v = Version.named("fixed", version=7)
    onchain = call(
        ledger, ledger.records.functions.recordLeafHash(v.record_id, 7, v.owner, v.ciphertext_hash, v.commitment)
    )
    assert onchain == v.leaf()
    # The leaf is an RFC 9162 leaf: the verifier's generic leafHash over the packed bytes agrees.
    packed = b"\x01" + v.record_id + (7).to_bytes(4, "big") + v.owner + v.ciphertext_hash + v.commitment
    assert call(ledger, ledger.verifier.functions.leafHash(packed)) == onchain


_bytes32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    record_id=_bytes32,
    version=st.integers(min_value=0, max_value=2**32 - 1),
    owner=_bytes32,
    ciphertext_hash=_bytes32,
    commitment=_bytes32,
)
def test_record_leaf_hash_for_any_input(
    ledger: LedgerChain, record_id: bytes, version: int, owner: bytes, ciphertext_hash: bytes, commitment: bytes
) -> None:
    fn = ledger.records.functions.recordLeafHash(record_id, version, owner, ciphertext_hash, commitment)
    assert call(ledger, fn) == record_leaf(record_id, version, owner, ciphertext_hash, commitment)


# --- single anchors ----------------------------------------------------------------------------------


def test_owner_anchors_a_record_version(ledger: LedgerChain, actors: Actors) -> None:
    v = Version.named("incident-1")
    receipt = transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), actors.owner)
    assert single_event(ledger.records, "RecordAnchored", receipt) == {
        "recordId": v.record_id,
        "version": 1,
        "ownerOrg": b32(POLICE),
        "ciphertextHash": v.ciphertext_hash,
        "commitment": v.commitment,
    }
    assert anchored_leaf(ledger, POLICE, v.record_id, 1) == v.leaf()
    # Kept under its owner only: no other organisation has anchored this record id.
    for other in (COMMITTEE, PROPERTY, ZERO32):
        assert anchored_leaf(ledger, other, v.record_id, 1) == ZERO32
    assert is_anchored(ledger, v)


def test_owner_is_the_organisation_of_the_sender(ledger: LedgerChain, actors: Actors) -> None:
    v = Version.named("resident-1", owner=COMMITTEE)
    receipt = transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), actors.grantee)
    assert single_event(ledger.records, "RecordAnchored", receipt)["ownerOrg"] == b32(COMMITTEE)
    assert is_anchored(ledger, v)
    # The same hashes claimed for another owner are not anchored.
    assert not is_anchored(ledger, Version(v.record_id, 1, b32(POLICE), v.ciphertext_hash, v.commitment))


def test_single_anchor_checks_every_field(ledger: LedgerChain, actors: Actors) -> None:
    v = Version.named("doc")
    transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), actors.owner)
    other = digest("other")
    for changed in (
        Version(other, 1, v.owner, v.ciphertext_hash, v.commitment),
        Version(v.record_id, 2, v.owner, v.ciphertext_hash, v.commitment),
        Version(v.record_id, 1, b32(PROPERTY), v.ciphertext_hash, v.commitment),
        Version(v.record_id, 1, v.owner, other, v.commitment),
        Version(v.record_id, 1, v.owner, v.ciphertext_hash, other),
    ):
        assert not is_anchored(ledger, changed)
    assert is_anchored(ledger, v)


def test_new_versions_are_separate_anchors(ledger: LedgerChain, actors: Actors) -> None:
    v1, v2 = Version.named("doc", 1), Version.named("doc", 2)
    for v in (v1, v2):
        transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), actors.owner)
    assert is_anchored(ledger, v1)
    assert is_anchored(ledger, v2)
    assert anchored_leaf(ledger, POLICE, v1.record_id, 3) == ZERO32


@pytest.mark.parametrize("same_hashes", [True, False], ids=["identical again", "different hashes"])
def test_a_version_is_write_once(ledger: LedgerChain, actors: Actors, same_hashes: bool) -> None:
    v = Version.named("doc")
    transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), actors.owner)
    again = v if same_hashes else Version(v.record_id, 1, v.owner, digest("tampered"), v.commitment)
    with reverts("RecordAnchorsAlreadyAnchored", v.record_id, 1):
        transact(ledger, ledger.records.functions.anchorRecord(*again.anchor_args()), actors.owner)
    assert anchored_leaf(ledger, POLICE, v.record_id, 1) == v.leaf()


@pytest.mark.parametrize("squatter_first", [True, False], ids=["squatter first", "owner first"])
def test_another_organisation_cannot_squat_an_owners_record_id(
    ledger: LedgerChain, actors: Actors, squatter_first: bool
) -> None:
    """Anchors are keyed per owner organisation: COMMITTEE anchoring POLICE's record id (and version)
    first does not block POLICE, both leaves are kept each under its owner, and the squatter's anchor
    never proves POLICE's record."""
    owners_version = Version.named("police-record")
    squat = Version(owners_version.record_id, 1, b32(COMMITTEE), digest("junk-ct"), digest("junk-c"))
    order = [(squat, actors.grantee), (owners_version, actors.owner)]
    for v, signer in order if squatter_first else reversed(order):
        receipt = transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), signer)
        assert single_event(ledger.records, "RecordAnchored", receipt) == {
            "recordId": owners_version.record_id,
            "version": 1,
            "ownerOrg": v.owner,
            "ciphertextHash": v.ciphertext_hash,
            "commitment": v.commitment,
        }

    assert anchored_leaf(ledger, POLICE, owners_version.record_id, 1) == owners_version.leaf()
    assert anchored_leaf(ledger, COMMITTEE, owners_version.record_id, 1) == squat.leaf()
    assert is_anchored(ledger, owners_version)
    assert is_anchored(ledger, squat)
    # The squatter's hashes claimed for the owner prove nothing, and neither do the owner's for the squatter.
    assert not is_anchored(ledger, Version(squat.record_id, 1, b32(POLICE), squat.ciphertext_hash, squat.commitment))
    assert not is_anchored(
        ledger,
        Version(owners_version.record_id, 1, b32(COMMITTEE), owners_version.ciphertext_hash, owners_version.commitment),
    )
    # Each owner is still write-once for its own record id and version.
    for v, signer in order:
        with reverts("RecordAnchorsAlreadyAnchored", owners_version.record_id, 1):
            transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), signer)


def test_two_owners_may_anchor_identical_hashes_under_the_same_record_id(ledger: LedgerChain, actors: Actors) -> None:
    # Same record id, version, ciphertext hash and commitment: the leaves differ because they bind the owner.
    police, committee = Version.named("shared"), Version.named("shared", owner=COMMITTEE)
    assert police.anchor_args() == committee.anchor_args()
    transact(ledger, ledger.records.functions.anchorRecord(*police.anchor_args()), actors.owner)
    transact(ledger, ledger.records.functions.anchorRecord(*committee.anchor_args()), actors.grantee)
    assert police.leaf() != committee.leaf()
    assert anchored_leaf(ledger, POLICE, police.record_id, 1) == police.leaf()
    assert anchored_leaf(ledger, COMMITTEE, police.record_id, 1) == committee.leaf()
    assert anchored_leaf(ledger, PROPERTY, police.record_id, 1) == ZERO32
    assert is_anchored(ledger, police)
    assert is_anchored(ledger, committee)
    assert not is_anchored(ledger, Version.named("shared", owner=PROPERTY))


@pytest.mark.parametrize("field", ["recordId", "version", "ciphertextHash", "commitment"])
def test_anchor_rejects_zero_fields(ledger: LedgerChain, actors: Actors, field: str) -> None:
    v = Version.named("doc")
    args = dict(zip(["recordId", "version", "ciphertextHash", "commitment"], v.anchor_args(), strict=True))
    args[field] = 0 if field == "version" else ZERO32
    with reverts("RecordAnchorsInvalidAnchor"):
        transact(ledger, ledger.records.functions.anchorRecord(*args.values()), actors.owner)


@pytest.mark.parametrize("caller", ["stranger", "admin", "pending_admin", "log_writer"])
def test_anchor_by_an_unknown_signer(ledger: LedgerChain, actors: Actors, caller: str) -> None:
    account = getattr(actors, caller)
    with reverts("RecordAnchorsUnknownSigner", account.address):
        transact(ledger, ledger.records.functions.anchorRecord(*Version.named("doc").anchor_args()), account)


def test_anchor_by_a_suspended_organisation(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("RecordAnchorsOrganisationSuspended", b32(SUSPENDED)):
        transact(ledger, ledger.records.functions.anchorRecord(*Version.named("doc").anchor_args()), actors.suspended)


def test_anchor_after_reinstatement(ledger: LedgerChain, actors: Actors) -> None:
    ledger.reinstate_organisation(signer=actors.admin, org_id=SUSPENDED)
    v = Version.named("doc", owner=SUSPENDED)
    transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), actors.suspended)
    assert is_anchored(ledger, v)


def test_anchor_owner_follows_signer_changes(ledger: LedgerChain, actors: Actors) -> None:
    ledger.propose_signer_change(signer=actors.admin, org_id=POLICE, new_signer=actors.stranger.address)
    ledger.accept_signer_change(signer=actors.owner, org_id=POLICE)
    with reverts("RecordAnchorsUnknownSigner", actors.owner.address):
        transact(ledger, ledger.records.functions.anchorRecord(*Version.named("doc").anchor_args()), actors.owner)
    v = Version.named("doc")
    receipt = transact(ledger, ledger.records.functions.anchorRecord(*v.anchor_args()), actors.stranger)
    assert single_event(ledger.records, "RecordAnchored", receipt)["ownerOrg"] == b32(POLICE)


# --- batches -----------------------------------------------------------------------------------------


def batch_of(n: int, owner: str = POLICE, tag: str = "b") -> tuple[list[Version], MerkleTree]:
    versions = [Version.named(f"{tag}-{i}", owner=owner) for i in range(n)]
    tree = MerkleTree()
    for v in versions:
        tree.append(v.leaf())
    return versions, tree


def test_anchor_batch(ledger: LedgerChain, actors: Actors) -> None:
    _, tree = batch_of(7)
    root, manifest = tree.root(), digest("manifest-1")
    fn = ledger.records.functions.anchorBatch(root, 7, manifest)
    assert fn.call({"from": actors.owner.address}) == 1
    receipt = transact(ledger, fn, actors.owner)
    assert single_event(ledger.records, "BatchAnchored", receipt) == {
        "sequence": 1,
        "ownerOrg": b32(POLICE),
        "root": root,
        "size": 7,
        "manifestHash": manifest,
    }
    assert stored_batch(ledger, POLICE, root) == [b32(POLICE), 7, receipt["blockNumber"], 1]
    assert stored_batch(ledger, COMMITTEE, root) == [ZERO32, 0, 0, 0]  # kept under its owner only
    assert call(ledger, ledger.records.functions.batchCount()) == 1

    _, tree2 = batch_of(3, owner=COMMITTEE, tag="c")
    receipt = transact(ledger, ledger.records.functions.anchorBatch(tree2.root(), 3, digest("m2")), actors.grantee)
    event = single_event(ledger.records, "BatchAnchored", receipt)
    assert (event["sequence"], event["ownerOrg"]) == (2, b32(COMMITTEE))
    assert call(ledger, ledger.records.functions.batchCount()) == 2


def test_unknown_batch_has_size_zero(ledger: LedgerChain) -> None:
    assert stored_batch(ledger, POLICE, digest("nothing")) == [ZERO32, 0, 0, 0]
    assert stored_batch(ledger, POLICE, ZERO32) == [ZERO32, 0, 0, 0]
    assert call(ledger, ledger.records.functions.batchCount()) == 0


def test_batch_root_is_write_once_per_owner(ledger: LedgerChain, actors: Actors) -> None:
    _, tree = batch_of(4)
    transact(ledger, ledger.records.functions.anchorBatch(tree.root(), 4, digest("m")), actors.owner)
    for size, manifest in ((4, digest("m")), (5, digest("m")), (4, digest("other manifest"))):
        with reverts("RecordAnchorsBatchAlreadyAnchored", tree.root()):
            transact(ledger, ledger.records.functions.anchorBatch(tree.root(), size, manifest), actors.owner)
    assert stored_batch(ledger, POLICE, tree.root())[1] == 4
    assert call(ledger, ledger.records.functions.batchCount()) == 1


@pytest.mark.parametrize("squatter_first", [True, False], ids=["squatter first", "owner first"])
def test_another_organisation_cannot_squat_an_owners_batch_root(
    ledger: LedgerChain, actors: Actors, squatter_first: bool
) -> None:
    """Batches are keyed per owner organisation: COMMITTEE anchoring POLICE's root (here with another
    size and manifest) does not block POLICE, both batches are kept each under its owner, and the
    squatter's batch never proves POLICE's records."""
    versions, tree = batch_of(4)
    root = tree.root()
    police = (actors.owner, POLICE, 4, digest("police manifest"))
    squat = (actors.grantee, COMMITTEE, 8, digest("squat manifest"))
    order = [squat, police] if squatter_first else [police, squat]
    blocks: dict[str, int] = {}
    for sequence, (signer, org, size, manifest) in enumerate(order, start=1):
        receipt = transact(ledger, ledger.records.functions.anchorBatch(root, size, manifest), signer)
        assert single_event(ledger.records, "BatchAnchored", receipt) == {
            "sequence": sequence,
            "ownerOrg": b32(org),
            "root": root,
            "size": size,
            "manifestHash": manifest,
        }
        blocks[org] = receipt["blockNumber"]
        if org == COMMITTEE and squatter_first:
            # The squatter's batch alone does not make POLICE's leaves anchored.
            assert not is_anchored(ledger, versions[1], root=root, index=1, proof=tree.inclusion_proof(1))

    police_sequence, squat_sequence = (2, 1) if squatter_first else (1, 2)
    assert stored_batch(ledger, POLICE, root) == [b32(POLICE), 4, blocks[POLICE], police_sequence]
    assert stored_batch(ledger, COMMITTEE, root) == [b32(COMMITTEE), 8, blocks[COMMITTEE], squat_sequence]
    assert stored_batch(ledger, PROPERTY, root) == [ZERO32, 0, 0, 0]
    assert call(ledger, ledger.records.functions.batchCount()) == 2

    for index, v in enumerate(versions):
        proof = tree.inclusion_proof(index)
        assert is_anchored(ledger, v, root=root, index=index, proof=proof)
        # POLICE's leaves claimed for the squatter do not verify against the squatter's batch.
        as_squatter = Version(v.record_id, v.version, b32(COMMITTEE), v.ciphertext_hash, v.commitment)
        assert not is_anchored(ledger, as_squatter, root=root, index=index, proof=proof)
    # Each owner is still write-once for its own root.
    for signer, _, size, manifest in order:
        with reverts("RecordAnchorsBatchAlreadyAnchored", root):
            transact(ledger, ledger.records.functions.anchorBatch(root, size, manifest), signer)


@pytest.mark.parametrize(
    ("root", "size", "manifest"),
    [(ZERO32, 4, digest("m")), (digest("root"), 0, digest("m")), (digest("root"), 4, ZERO32)],
    ids=["zero root", "empty batch", "zero manifest hash"],
)
def test_anchor_batch_rejects_invalid_input(
    ledger: LedgerChain, actors: Actors, root: bytes, size: int, manifest: bytes
) -> None:
    with reverts("RecordAnchorsInvalidAnchor"):
        transact(ledger, ledger.records.functions.anchorBatch(root, size, manifest), actors.owner)
    assert stored_batch(ledger, POLICE, root) == [ZERO32, 0, 0, 0]
    assert call(ledger, ledger.records.functions.batchCount()) == 0


def test_anchor_batch_rejects_a_zero_manifest_hash(ledger: LedgerChain, actors: Actors) -> None:
    """Every batch anchor names its manifest (auditors check per-record uniqueness from it): a zero
    manifest hash is refused, and the root stays free for the owner to anchor with its manifest."""
    _, tree = batch_of(4)
    with reverts("RecordAnchorsInvalidAnchor"):
        transact(ledger, ledger.records.functions.anchorBatch(tree.root(), 4, ZERO32), actors.owner)
    receipt = transact(ledger, ledger.records.functions.anchorBatch(tree.root(), 4, digest("manifest")), actors.owner)
    event = single_event(ledger.records, "BatchAnchored", receipt)
    assert (event["sequence"], event["manifestHash"]) == (1, digest("manifest"))


@pytest.mark.parametrize("caller", ["stranger", "admin"])
def test_anchor_batch_by_an_unknown_signer(ledger: LedgerChain, actors: Actors, caller: str) -> None:
    account = getattr(actors, caller)
    with reverts("RecordAnchorsUnknownSigner", account.address):
        transact(ledger, ledger.records.functions.anchorBatch(digest("root"), 4, digest("m")), account)


def test_anchor_batch_by_a_suspended_organisation(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("RecordAnchorsOrganisationSuspended", b32(SUSPENDED)):
        transact(ledger, ledger.records.functions.anchorBatch(digest("root"), 4, digest("m")), actors.suspended)


@pytest.mark.parametrize("size", [1, 2, 7, 16])
def test_every_leaf_of_a_batch_is_anchored(ledger: LedgerChain, actors: Actors, size: int) -> None:
    versions, tree = batch_of(size)
    root = tree.root()
    transact(ledger, ledger.records.functions.anchorBatch(root, size, digest("m")), actors.owner)
    for index, v in enumerate(versions):
        proof = tree.inclusion_proof(index)
        assert is_anchored(ledger, v, root=root, index=index, proof=proof)
    # Not anchored on its own, only as part of the batch.
    assert not is_anchored(ledger, versions[0])


def test_batch_proof_rejections(ledger: LedgerChain, actors: Actors) -> None:
    versions, tree = batch_of(7)
    root = tree.root()
    transact(ledger, ledger.records.functions.anchorBatch(root, 7, digest("m")), actors.owner)
    v, index = versions[5], 5
    proof = tree.inclusion_proof(index)
    assert is_anchored(ledger, v, root=root, index=index, proof=proof)

    wrong_owner = Version(v.record_id, v.version, b32(COMMITTEE), v.ciphertext_hash, v.commitment)
    assert not is_anchored(ledger, wrong_owner, root=root, index=index, proof=proof)
    assert not is_anchored(ledger, v, root=root, index=4, proof=proof)
    assert not is_anchored(ledger, v, root=root, index=6, proof=proof)
    assert not is_anchored(ledger, v, root=root, index=index + 7, proof=proof)
    flipped = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    assert not is_anchored(ledger, v, root=root, index=index, proof=flipped)
    assert not is_anchored(ledger, v, root=root, index=index, proof=proof[:-1])
    assert not is_anchored(ledger, v, root=root, index=index, proof=[*proof, digest("extra")])
    assert not is_anchored(ledger, v, root=root, index=index, proof=tree.inclusion_proof(index, 6))
    assert not is_anchored(ledger, versions[4], root=root, index=index, proof=proof)
    # A root that was never anchored proves nothing, even with a proof that fits it.
    assert not is_anchored(ledger, versions[0], root=tree.root(4), index=0, proof=tree.inclusion_proof(0, 4))


def test_batch_of_another_owner_does_not_prove(ledger: LedgerChain, actors: Actors) -> None:
    # POLICE's leaves anchored by COMMITTEE's signer: the batch belongs to COMMITTEE, so they do not verify.
    versions, tree = batch_of(4)
    transact(ledger, ledger.records.functions.anchorBatch(tree.root(), 4, digest("m")), actors.grantee)
    assert not is_anchored(ledger, versions[1], root=tree.root(), index=1, proof=tree.inclusion_proof(1))


def test_batch_with_a_declared_size_that_does_not_match(ledger: LedgerChain, actors: Actors) -> None:
    versions, tree = batch_of(7)
    transact(ledger, ledger.records.functions.anchorBatch(tree.root(), 8, digest("m")), actors.owner)
    assert not is_anchored(ledger, versions[6], root=tree.root(), index=6, proof=tree.inclusion_proof(6))
