"""The verifier and the bundle on synthetic evidence (no devnet): manifests old and new, bundle round
trip, the consistency-pair strategy above 200 heads, emergency-kind options, and the benchmark."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import timedelta

import pytest

from ledger_api.accesslog.entry import Entry
from ledger_api.audit.bench import run_bench, synthetic_evidence
from ledger_api.audit.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_V1, BundleDocument, decode_bundle, encode_bundle
from ledger_api.audit.errors import BundleUnreadable
from ledger_api.audit.evidence import Evidence, HeadReceipt
from ledger_api.audit.html import render_html
from ledger_api.audit.model import AdminGrantAction, DiscrepancyKind, SignerChangeStep
from ledger_api.audit.report import build_report
from ledger_api.audit.verifier import VerifyOptions, verify
from ledger_api.merkle import MerkleTree, leaf_hash
from ledger_api.records.leaves import MANIFEST_FORMAT_V1, BatchManifest, LeafMetadata, RecordLeaf

K = DiscrepancyKind


def leaf(n: int) -> RecordLeaf:
    return RecordLeaf(
        record_id=f"{n:064x}",
        version=1,
        owner_org="PS-XIHU-01",
        ciphertext_hash=f"{n + 1:064x}",
        commitment=f"{n + 2:064x}",
    )


def test_a_v2_manifest_carries_type_community_and_blind_indexes_and_keeps_the_leaf_encoding() -> None:
    leaves = (leaf(1), leaf(2))
    metadata = (LeafMetadata(record_type="incident", community_code="330102001", subjects=("ab" * 32,)), LeafMetadata())
    manifest = BatchManifest(owner_org="PS-XIHU-01", leaves=leaves, metadata=metadata)
    again = BatchManifest.from_bytes(manifest.to_bytes())
    assert again == manifest
    assert again.metadata_at(0).subjects == ("ab" * 32,)
    assert again.metadata_at(1) == LeafMetadata()
    # The on-chain leaf (and so the root) is the same with or without metadata.
    assert again.root() == BatchManifest(owner_org="PS-XIHU-01", leaves=leaves).root()


def test_a_v1_manifest_is_still_read_with_nothing_known_about_its_records() -> None:
    document = {
        "format": MANIFEST_FORMAT_V1,
        "owner_org": "PS-XIHU-01",
        "leaves": [[leaf(1).record_id, 1, leaf(1).ciphertext_hash, leaf(1).commitment]],
    }
    manifest = BatchManifest.from_bytes(json.dumps(document).encode())
    assert manifest.leaves == (leaf(1),)
    assert manifest.metadata_at(0) == LeafMetadata()
    assert BatchManifest.looks_like_manifest(json.dumps(document).encode())
    with pytest.raises(ValueError, match="malformed"):
        BatchManifest.from_bytes(json.dumps({**document, "leaves": [[1, 2]]}).encode())


def test_a_v3_manifest_carries_address_blind_indexes_and_a_v2_one_is_still_read_without_them() -> None:
    meta = LeafMetadata(
        record_type="resident", community_code="330102002", subjects=("ab" * 32,), addresses=("cd" * 32,)
    )
    manifest = BatchManifest(owner_org="PS-XIHU-01", leaves=(leaf(1),), metadata=(meta,))
    data = manifest.to_bytes()
    assert json.loads(data)["format"] == "ledger-batch-manifest/v3"
    assert BatchManifest.from_bytes(data).metadata_at(0).addresses == ("cd" * 32,)
    v2 = {
        "format": "ledger-batch-manifest/v2",
        "owner_org": "PS-XIHU-01",
        "leaves": [[leaf(1).record_id, 1, leaf(1).ciphertext_hash, leaf(1).commitment, "resident", "330102002",
                    ["ab" * 32]]],
    }  # fmt: skip
    old = BatchManifest.from_bytes(json.dumps(v2).encode())
    assert old.metadata_at(0) == LeafMetadata(record_type="resident", community_code="330102002", subjects=("ab" * 32,))
    assert BatchManifest.looks_like_manifest(json.dumps(v2).encode())


def test_synthetic_evidence_verifies_clean_and_survives_the_bundle_round_trip() -> None:
    evidence = synthetic_evidence(records=300, entries=250, batch=100, head_every=60)
    result = verify(evidence)
    assert result.ok, [d.line() for d in result.discrepancies]
    assert (len(result.records), len(result.reads), len(result.tree_heads)) == (300, 250, 5)
    loaded, found = decode_bundle(encode_bundle(evidence))
    assert found == []
    assert loaded.chain == evidence.chain
    assert loaded.storage == evidence.storage
    again = verify(loaded)
    assert again.ok
    assert again.reads == result.reads


def test_emergency_reads_follow_the_configured_kinds() -> None:
    evidence = synthetic_evidence(records=10, entries=10, batch=10, head_every=10)
    result = verify(evidence, options=VerifyOptions(emergency_kinds=frozenset()))
    assert result.ok  # no emergency reads at all: the option changes nothing
    assert result.emergency_reads == ()


def test_above_200_heads_consecutive_pairs_and_the_newest_still_catch_a_shrinking_log() -> None:
    evidence = synthetic_evidence(records=10, entries=520, batch=10, head_every=2)
    assert len(evidence.chain.heads) == 260
    assert verify(evidence).ok
    heads = list(evidence.chain.heads)
    heads[100], heads[101] = (
        dataclasses.replace(heads[101], index=100),
        dataclasses.replace(heads[100], index=101),
    )
    shrunk = dataclasses.replace(evidence, chain=dataclasses.replace(evidence.chain, heads=tuple(heads)))
    result = verify(shrunk)
    assert [(d.kind, d.subject) for d in result.discrepancies] == [(K.LOG_INCONSISTENT, "tree head #101")]


def test_a_head_whose_root_the_entries_do_not_rebuild_is_named() -> None:
    evidence = synthetic_evidence(records=10, entries=30, batch=10, head_every=10)
    heads = list(evidence.chain.heads)
    heads[1] = HeadReceipt(
        index=1, size=heads[1].size, root="00" * 32, block_number=heads[1].block_number, timestamp=heads[1].timestamp
    )
    forged = Evidence(
        chain=dataclasses.replace(evidence.chain, heads=tuple(heads)), storage=evidence.storage, source="x"
    )
    result = verify(forged)
    assert [(d.kind, d.subject) for d in result.discrepancies] == [(K.ENTRY_NOT_ANCHORED, "tree head #1")]


def test_a_section_edited_without_its_digest_is_named_and_still_checked() -> None:
    evidence = synthetic_evidence(records=20, entries=20, batch=10, head_every=10)
    document = BundleDocument.decode(encode_bundle(evidence))
    blobs = document.section("blobs")
    blobs[3][1] = "ff" * 32
    document.set_section("blobs", blobs)
    loaded, found = decode_bundle(document.encode())
    result = verify(loaded, found=found)
    assert {(d.kind, d.subject) for d in result.discrepancies} == {
        (K.EVIDENCE_MISMATCH, "bundle section blobs"),
        (K.BLOB_HASH_MISMATCH, f"record {blobs[3][3][:12]}… v1"),
    }


def test_a_file_that_is_not_a_bundle_is_refused_in_one_line() -> None:
    with pytest.raises(BundleUnreadable, match="not an audit bundle"):
        decode_bundle(b"plain text")
    with pytest.raises(BundleUnreadable, match="not a ledger-audit-bundle/v1 bundle"):
        decode_bundle(gzip.compress(b'{"format": "something else"}\n'))


def test_the_benchmark_measures_a_clean_synthetic_bundle() -> None:
    result = run_bench(records=2_000, entries=2_000, batch=500, head_every=250)
    assert result.discrepancies == 0
    assert (result.records, result.entries, result.tree_heads) == (2_000, 2_000, 8)
    assert result.bundle_bytes > 0
    assert result.records_per_s > 0
    assert result.to_json()["bundle_bytes_per_100k_records"] == round(result.bundle_bytes * 50)


def test_validity_starts_at_the_checked_block_and_ends_by_the_release_time() -> None:
    """A grant opening at the checked block's time covers a read released a second later (the release
    time holds a grant to its end, never to its start); released after its end, the read is not covered."""
    evidence = synthetic_evidence(records=10, entries=5, batch=10, head_every=10)
    first = Entry.from_leaf_data(evidence.storage.entries[0])
    checked_at = int(first.time.timestamp())  # the checked block mined as the first read was released
    times = {**evidence.chain.block_times, first.checked_block: checked_at}
    (grant,) = evidence.chain.grants

    def with_grant(**changes: int) -> Evidence:
        chain = dataclasses.replace(evidence.chain, block_times=times, grants=(dataclasses.replace(grant, **changes),))
        return dataclasses.replace(evidence, chain=chain)

    assert verify(with_grant(valid_from=checked_at)).ok
    result = verify(with_grant(valid_from=checked_at + 1))
    assert {d.detail.split(": ", 1)[1].split(" (")[0] for d in result.discrepancies} == {
        f"grant 1 NOT_YET_VALID at block {first.checked_block}"
    }
    # Reads released at +0 .. +4 s; past the end by the tolerance (2 s) from +3 s on.
    result = verify(with_grant(valid_until=checked_at + 1))
    assert [d.subject for d in result.discrepancies] == ["access entry #3", "access entry #4"]
    assert all("EXPIRED when the read was released" in d.detail for d in result.discrepancies)


# --- back-dating and time order -------------------------------------------------------------------------


def rewritten(evidence: Evidence, index: int, **changes: object) -> Evidence:
    """``evidence`` with entry ``index`` changed, and the heads re-rooted over the changed log (what a log
    writer holding the anchoring key could anchor)."""
    entries = list(evidence.storage.entries)
    entry = Entry.from_leaf_data(entries[index])
    entries[index] = Entry.create(**{**entry.model_dump(), **changes}).leaf_data()
    tree = MerkleTree.from_leaf_hashes(leaf_hash(data) for data in entries)
    heads = tuple(dataclasses.replace(h, root=tree.root(h.size).hex()) for h in evidence.chain.heads)
    return dataclasses.replace(
        evidence,
        chain=dataclasses.replace(evidence.chain, heads=heads),
        storage=dataclasses.replace(evidence.storage, entries=tuple(entries)),
    )


def test_an_entry_checked_before_its_anchoring_window_is_backdated() -> None:
    """Heads of 2 entries, one block (2 s) apart: entry 400 sits under head #200, whose entries were all
    appended after head #198 was anchored. A check claimed there is the head's floor; two blocks before
    it is within the tolerance (the next block came 2 s before the floor), three blocks before is not."""
    evidence = synthetic_evidence(records=10, entries=520, batch=10, head_every=2)
    heads = sorted(evidence.chain.heads, key=lambda h: h.index)
    floor = heads[198]
    assert verify(rewritten(evidence, 400, checked_block=floor.block_number)).ok
    assert verify(rewritten(evidence, 400, checked_block=floor.block_number - 2)).ok
    result = verify(rewritten(evidence, 400, checked_block=floor.block_number - 4))
    assert [(d.kind, d.subject) for d in result.discrepancies] == [(K.ENTRY_BACKDATED, "access entry #400")]
    assert f"appended after tree head #198 was anchored in block {floor.block_number}" in result.discrepancies[0].detail
    # Far back (block 12, where the grant was already valid): the grant check alone would pass.
    result = verify(rewritten(evidence, 400, checked_block=12))
    assert [d.kind for d in result.discrepancies] == [K.ENTRY_BACKDATED]
    # A wider tolerance accepts the three blocks; heads that may have left a backlog give no floor.
    assert verify(rewritten(evidence, 400, checked_block=floor.block_number - 4), options=VerifyOptions(
        backdate_tolerance_s=8.0)).ok  # fmt: skip
    assert verify(rewritten(evidence, 400, checked_block=12), options=VerifyOptions(segment_max=2)).ok


def test_entry_times_go_back_only_within_the_tolerance() -> None:
    evidence = synthetic_evidence(records=10, entries=30, batch=10, head_every=10)
    latest = Entry.from_leaf_data(evidence.storage.entries[19]).time  # entries are a second apart
    assert verify(rewritten(evidence, 20, time=latest - timedelta(seconds=4))).ok
    result = verify(rewritten(evidence, 20, time=latest - timedelta(seconds=6)))
    assert [(d.kind, d.subject) for d in result.discrepancies] == [(K.ENTRY_TIME_OUT_OF_ORDER, "access entry #20")]
    assert "6.000 s before an earlier entry's" in result.discrepancies[0].detail
    assert verify(rewritten(evidence, 20, time=latest - timedelta(seconds=6)), options=VerifyOptions(
        time_order_tolerance_s=10.0)).ok  # fmt: skip


# --- bundle versions --------------------------------------------------------------------------------------


def test_a_v1_bundle_still_reads_and_says_it_holds_no_admin_actions() -> None:
    evidence = synthetic_evidence(records=20, entries=20, batch=10, head_every=10)
    document = BundleDocument.decode(encode_bundle(evidence))
    assert document.header["format"] == BUNDLE_FORMAT
    document.header["format"] = BUNDLE_FORMAT_V1
    for name in ("admin_grants", "signer_changes"):
        del document.texts[name]
    document.reseal()
    data = document.encode()
    assert b"admin_grants" not in gzip.decompress(data)
    loaded, found = decode_bundle(data)
    assert found == []
    assert loaded.chain.admin_events_known is False
    result = verify(loaded)
    assert result.ok
    assert result.reads == verify(evidence).reads
    report = build_report(result)
    assert report.to_json_dict()["summary"]["admin_events_known"] is False
    assert "Not in this evidence (a v1 bundle holds no admin actions)." in render_html(report)
    # A v1 bundle with a v2 section in it is refused, not half read.
    with pytest.raises(BundleUnreadable, match="unknown or repeated section 'admin_grants'"):
        decode_bundle(gzip.compress(gzip.decompress(document.encode()) + b"admin_grants []\n"))


def test_admin_actions_survive_the_bundle_round_trip() -> None:
    evidence = synthetic_evidence(records=10, entries=10, batch=10, head_every=10)
    action = AdminGrantAction(
        grant_id=1, action="created", owner_org="PM-LVCHENG-01", grantee_org="CM-CUIYUAN-01", by="0x" + "ab" * 20,
        block_number=3, transaction="0x" + "cd" * 32, log_index=0, timestamp=1_767_225_600,
    )  # fmt: skip
    steps = (
        SignerChangeStep(
            org_id="PM-LVCHENG-01", step="proposed", by="0x" + "ab" * 20, new_signer="0x" + "ef" * 20,
            previous_signer="0x" + "12" * 20, effective_at=1_767_484_800, block_number=4,
            transaction="0x" + "34" * 32, log_index=1, timestamp=1_767_225_610,
        ),
        SignerChangeStep(
            org_id="PM-LVCHENG-01", step="cancelled", by="0x" + "12" * 20, new_signer="0x" + "ef" * 20,
            block_number=5, transaction="0x" + "56" * 32, log_index=0, timestamp=None,
        ),
    )  # fmt: skip
    chain = dataclasses.replace(evidence.chain, admin_grants=(action,), signer_changes=steps)
    evidence = dataclasses.replace(evidence, chain=chain)
    loaded, found = decode_bundle(encode_bundle(evidence))
    assert found == []
    assert loaded.chain == evidence.chain
    result = verify(loaded)
    assert result.ok
    assert [r.entry_index for r in result.admin_granted_reads] == list(range(10))  # every read is under grant 1
    document = build_report(result).to_json_dict()
    assert [s["step"] for s in document["signer_changes"]] == ["proposed", "cancelled"]
    assert document["signer_changes"][1]["time"] is None
    assert document["admin_grants"][0]["time"] == "2026-01-01T08:00:00+08:00"
    assert document["summary"]["admin_granted_reads"] == 10
