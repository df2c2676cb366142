"""The auditor's verifier on a real ledger history: clean from chain + storage and from a bundle offline,
every kind of discrepancy a bundle can hold rejected for its reason, and 1,000 random tampers named."""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger_api.audit.bundle import BundleDocument, decode_bundle, encode_bundle
from ledger_api.audit.collect import collect_chain, collect_evidence, collect_storage
from ledger_api.audit.evidence import ChainFacts, Evidence
from ledger_api.audit.index_check import check_index
from ledger_api.audit.model import AuditResult, DiscrepancyKind
from ledger_api.audit.verifier import VerifyOptions, verify
from ledger_api.chain.devnet import Devnet
from ledger_api.chain.rpc import JsonRpc
from ledger_api.cli import main as ledger_main
from ledger_api.crypto.envelope import BLOB_MAGIC, parse_blob
from ledger_api.merkle import MerkleTree, leaf_hash
from ledger_api.storage.local import LocalBlobStore
from tests.ledger_api.audit.scenario import AUDITOR_KEY, Scenario, build_scenario, collect_scenario_evidence
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, wait_until

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

K = DiscrepancyKind


@pytest.fixture(scope="module")
def scenario(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("audit-ledger"), devnet.rpc_url)


@pytest.fixture(scope="module")
def evidence(scenario: Scenario) -> Evidence:
    return collect_scenario_evidence(scenario)


@pytest.fixture(scope="module")
def clean_bundle(evidence: Evidence) -> bytes:
    return encode_bundle(evidence)


def kinds(result: AuditResult) -> set[DiscrepancyKind]:
    return {d.kind for d in result.discrepancies}


def source_args(scenario: Scenario) -> list[str]:
    return [
        "--rpc",
        scenario.rpc_url,
        "--storage",
        str(scenario.blob_dir),
        "--deployment",
        str(scenario.deployment_file),
    ]


# --- clean ----------------------------------------------------------------------------------------------


def test_a_clean_ledger_verifies_from_chain_and_storage(scenario: Scenario, evidence: Evidence) -> None:
    result = verify(evidence)
    assert result.discrepancies == ()
    assert result.ok
    assert len(result.records) == scenario.record_versions
    assert len(result.reads) == scenario.entries - len(scenario.refusal_entries) == 5
    assert all(read.covered for read in result.reads)
    # The refused read under the revoked grant is in the anchored log, named with why (invariant 8).
    (refusal,) = result.refusals
    assert refusal.entry_index == scenario.refusal_entries[0]
    assert (refusal.accessor_org, refusal.record_id, refusal.grant_id, refusal.refusal, refusal.owner_org) == (
        COMMITTEE, scenario.incident.record_id, scenario.revoked_grant, "REVOKED", POLICE)  # fmt: skip
    assert refusal.anchored_by_head is not None
    assert [r.entry_index for r in result.emergency_reads] == list(scenario.emergency_entries)
    assert len(result.tree_heads) >= 2
    assert {o.org_id: o.kind for o in result.organisations}["AU-XIHU-01"] == "auditor"

    # The manifests carry type, community and the subjects' blind indexes (never an ID number).
    incident_v2 = next(r for r in result.records if r.record_id == scenario.incident.record_id and r.version == 2)
    assert (incident_v2.record_type, incident_v2.community_code) == ("incident", scenario.incident.community_code)
    assert incident_v2.subjects
    assert all(len(s) == 64 for s in incident_v2.subjects)
    assert sum(1 for r in result.records if r.subjects) == scenario.id_numbers
    assert all(r.anchored_at is not None and r.transaction.startswith("0x") for r in result.records)
    (erased,) = [r for r in result.records if r.erased]
    assert erased.record_id == scenario.erased_record  # shredded on purpose: not a missing blob

    by_basis = {read.entry_index: read for read in result.reads}
    granted = [r for r in result.reads if r.grant_id == scenario.revoked_grant]
    assert len(granted) == 2
    assert all(r.basis.startswith(f"grant {scenario.revoked_grant} valid at block") for r in granted)
    assert all(r.checked_block < scenario.revoked_block for r in granted)
    assert {r.version for r in granted} == {1, 2}
    assert granted[0].subjects
    assert granted[0].record_type == "incident"
    assert granted[0].accessor_kind == "committee"
    (owner_read,) = [r for r in result.reads if r.basis == "owner read"]
    assert owner_read.accessor_org == POLICE
    (emergency,) = result.emergency_reads
    assert emergency.accessor_kind == "police"
    assert "listed for review" in emergency.basis
    assert by_basis[emergency.entry_index].owner_org == COMMITTEE
    expiring = next(g for g in result.grants if g.grant_id == scenario.expiring_grant)
    assert expiring.owner_org == PROPERTY
    assert expiring.revoked_block == 0
    revoked = next(g for g in result.grants if g.grant_id == scenario.revoked_grant)
    assert revoked.revoked_block == scenario.revoked_block
    assert all(r.anchored_by_head is not None for r in result.reads)


def test_the_index_agrees_with_the_verified_facts(scenario: Scenario, evidence: Evidence) -> None:
    assert check_index(scenario.settings.index_url, verify(evidence), evidence) == []


def test_the_cli_verifies_exports_and_checks_the_bundle_offline(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ledger_main(["audit", "verify", *source_args(scenario)]) == 0
    out = capsys.readouterr().out
    assert f"records verified: {scenario.record_versions}" in out
    assert f"access entries verified: {scenario.entries}" in out
    assert "emergency reads listed for review: 1" in out
    assert "refused attempts: 1" in out
    assert "OK: no discrepancies" in out
    # The opt-in index cross-check agrees too (the index is compared, never used as evidence).
    assert ledger_main(["audit", "verify", *source_args(scenario), "--check-index", scenario.settings.index_url]) == 0
    assert "OK: no discrepancies" in capsys.readouterr().out

    bundle = tmp_path / "audit.bundle"
    assert ledger_main(["audit", "export", *source_args(scenario), "--out", str(bundle)]) == 0
    assert "wrote" in capsys.readouterr().out

    def no_network(*_args: object, **_kwargs: object) -> Any:
        raise AssertionError("an offline verification must not talk to any node")

    with monkeypatch.context() as offline:
        offline.setattr(JsonRpc, "call", no_network)
        assert ledger_main(["audit", "verify", "--bundle", str(bundle), "--json"]) == 0
    summary = __import__("json").loads(capsys.readouterr().out)
    assert summary["records_verified"] == scenario.record_versions
    assert summary["entries_verified"] == scenario.entries
    assert summary["reads_covered"] == scenario.entries - len(scenario.refusal_entries)
    assert summary["refusals"] == len(scenario.refusal_entries)
    assert summary["discrepancies"] == 0

    # With --rpc the bundle's chain facts are compared with the node's: they agree.
    assert ledger_main(["audit", "verify", "--bundle", str(bundle), "--rpc", scenario.rpc_url]) == 0
    capsys.readouterr()


def test_unusable_sources_exit_2_with_one_line(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk").write_bytes(b"not a bundle")
    with pytest.raises(SystemExit) as exit_info:
        ledger_main(["audit", "verify", "--bundle", str(tmp_path / "junk")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ledger: error: not an audit bundle")
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        ledger_main(["audit", "verify", "--rpc", "http://127.0.0.1:9", "--storage", str(scenario.blob_dir)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot reach the chain" in err
    assert "Traceback" not in err
    assert err.count("\n") == 1


# --- the must-fail bundle bank ----------------------------------------------------------------------------


def _entries(doc: BundleDocument) -> list[str]:
    return list(doc.section("entries"))


def _forge_entry(doc: BundleDocument, **fields: object) -> None:
    """Append an access entry and a tree head that covers it: what a dishonest log writer could anchor."""
    _forge_entries(doc, [fields])


def _forge_entries(doc: BundleDocument, forged: list[dict[str, object]]) -> None:
    """Append access entries and one tree head that covers them."""
    from datetime import UTC, datetime

    from ledger_api.accesslog.entry import Entry

    entries = _entries(doc)
    for fields in forged:
        entry = Entry.create(**{"time": datetime.now(UTC), "request_id": "forged", **fields})
        entries.append(entry.leaf_data().decode())
    tree = MerkleTree.from_leaf_hashes(leaf_hash(e.encode()) for e in entries)
    heads = doc.section("tree_heads")
    block = doc.header["checkpoint_block"]
    heads.append([len(heads), tree.size, tree.root().hex(), block, heads[-1][4] + 1])
    times = dict(doc.section("block_times"))
    doc.set_section("entries", entries)
    doc.set_section("tree_heads", heads)
    doc.set_section("block_times", sorted({**{int(b): t for b, t in times.items()}, block: heads[-1][4]}.items()))


def _record_blobs(doc: BundleDocument) -> list[list[Any]]:
    return [b for b in doc.section("blobs") if b[2] == "record"]


def _incident_v2(doc: BundleDocument, scenario: Scenario) -> tuple[str, int]:
    return scenario.incident.record_id, 2


def bank(scenario: Scenario) -> dict[DiscrepancyKind, Callable[[BundleDocument], None]]:
    """One tamper per kind a bundle can hold; every one but evidence-mismatch re-seals the digests (a
    forger who recomputes them), so that exactly the kind under test is what remains."""

    def blob_missing(doc: BundleDocument) -> None:
        blobs = doc.section("blobs")
        victim = next(b for b in blobs if b[2] == "record")
        doc.set_section("blobs", [b for b in blobs if b is not victim])

    def blob_hash_mismatch(doc: BundleDocument) -> None:
        blobs = doc.section("blobs")
        victim = next(b for b in blobs if b[2] == "record")
        victim[1] = "0" * 64
        doc.set_section("blobs", blobs)

    def blob_unanchored(doc: BundleDocument) -> None:
        blobs = doc.section("blobs")
        blobs.append(["ab" * 32, "ab" * 32, "record", "cd" * 32, 1, POLICE])
        doc.set_section("blobs", blobs)

    def manifest_missing(doc: BundleDocument) -> None:
        doc.set_section("manifests", doc.section("manifests")[1:])

    def manifest_mismatch(doc: BundleDocument) -> None:
        manifests = doc.section("manifests")
        manifests[0][1] = manifests[0][1].replace('"format"', '"format" ', 1)
        doc.set_section("manifests", manifests)

    def version_replayed(doc: BundleDocument) -> None:
        receipts = doc.section("receipts")
        replay = list(receipts[0])
        replay[0] = max(r[0] for r in receipts) + 1
        replay[5] = doc.header["checkpoint_block"]
        doc.set_section("receipts", [*receipts, replay])

    def entry_not_anchored(doc: BundleDocument) -> None:
        doc.set_section("entries", _entries(doc)[:-1])

    def log_inconsistent(doc: BundleDocument) -> None:
        heads = doc.section("tree_heads")
        heads[0][0], heads[1][0] = heads[1][0], heads[0][0]  # the log "shrank" from head #0 to head #1
        doc.set_section("tree_heads", heads)

    def log_segment_invalid(doc: BundleDocument) -> None:
        doc.set_section("log_problems", ["segment 00ff…: the segment's SHA-256 differs from its storage key"])

    def read_not_covered(doc: BundleDocument) -> None:
        record_id, version = _incident_v2(doc, scenario)
        _forge_entry(
            doc, accessor_org=COMMITTEE, record_id=record_id, version=version, owner_org=POLICE,
            grant_id=scenario.revoked_grant, purpose="elderly_care", emergency=False,
            checked_block=scenario.revoked_block,
        )  # fmt: skip

    def emergency_not_permitted(doc: BundleDocument) -> None:
        record_id, version = _incident_v2(doc, scenario)
        _forge_entry(
            doc, accessor_org=PROPERTY, record_id=record_id, version=version, owner_org=POLICE, grant_id=0,
            purpose="emergency_response", emergency=True, checked_block=scenario.revoked_block,
        )  # fmt: skip

    def entry_backdated(doc: BundleDocument) -> None:
        # The owner's own read (no grant to check), claimed at the block before the first batch's: the
        # entry lands under a head whose floor (head #n-2) was mined long after that block's successor.
        first_receipt = min(r[5] for r in doc.section("receipts"))
        assert len(doc.section("tree_heads")) >= 2
        _forge_entry(
            doc, accessor_org=POLICE, record_id=scenario.incident.record_id, version=2, owner_org=POLICE,
            grant_id=0, purpose="investigation", emergency=False, checked_block=first_receipt - 1,
        )  # fmt: skip

    def entry_time_out_of_order(doc: BundleDocument) -> None:
        # The owner's own read, checked at the newest head's block, released an hour before the last entry.
        from datetime import datetime, timedelta

        latest = max(datetime.fromisoformat(__import__("json").loads(e)["time"]) for e in _entries(doc))
        _forge_entry(
            doc, accessor_org=POLICE, record_id=scenario.incident.record_id, version=2, owner_org=POLICE,
            grant_id=0, purpose="investigation", emergency=False, checked_block=doc.section("tree_heads")[-1][3],
            time=latest - timedelta(hours=1),
        )  # fmt: skip

    def break_glass(doc: BundleDocument, **fields: object) -> dict[str, object]:
        """A break-glass read of the committee's hazard report by the police, within every bound unless
        ``fields`` break one: decided just before the police's communities changed (the scenario's last
        step leaves it serving only the other community)."""
        record_id = next(b[3] for b in _record_blobs(doc) if b[5] == COMMITTEE)
        changed_at = int(dict(doc.section("communities"))[POLICE][-1][0])
        return {
            "accessor_org": POLICE, "record_id": record_id, "version": 1, "owner_org": COMMITTEE, "grant_id": 0,
            "purpose": "emergency_response", "emergency": True, "checked_block": changed_at - 1,
            "reason_class": "life_threat", "reason": "a person unconscious", "incident_ref": "110-0001",
            "revealed": ("id_number", "phone"), **fields,
        }  # fmt: skip

    def emergency_outside_communities(doc: BundleDocument) -> None:
        # Decided at the checkpoint: the police no longer served the record's community.
        _forge_entry(doc, **break_glass(doc, checked_block=doc.header["checkpoint_block"]))

    def emergency_without_reason(doc: BundleDocument) -> None:
        _forge_entry(doc, **break_glass(doc, incident_ref=None))

    def emergency_identifiers_revealed(doc: BundleDocument) -> None:
        # A class that shows no identifier, ID numbers and phones shown.
        _forge_entry(doc, **break_glass(doc, reason_class="public_order"))

    def emergency_rate_exceeded(doc: BundleDocument) -> None:
        # With the bank's limit of 3 an hour, the scenario's break-glass read and these three make one too many.
        _forge_entries(doc, [break_glass(doc, request_id=f"forged-{n}") for n in range(3)])

    return {
        K.EMERGENCY_OUTSIDE_COMMUNITIES: emergency_outside_communities,
        K.EMERGENCY_WITHOUT_REASON: emergency_without_reason,
        K.EMERGENCY_IDENTIFIERS_REVEALED: emergency_identifiers_revealed,
        K.EMERGENCY_RATE_EXCEEDED: emergency_rate_exceeded,
        K.ENTRY_BACKDATED: entry_backdated,
        K.ENTRY_TIME_OUT_OF_ORDER: entry_time_out_of_order,
        K.BLOB_MISSING: blob_missing,
        K.BLOB_HASH_MISMATCH: blob_hash_mismatch,
        K.BLOB_UNANCHORED: blob_unanchored,
        K.MANIFEST_MISSING: manifest_missing,
        K.MANIFEST_MISMATCH: manifest_mismatch,
        K.VERSION_REPLAYED: version_replayed,
        K.ENTRY_NOT_ANCHORED: entry_not_anchored,
        K.LOG_INCONSISTENT: log_inconsistent,
        K.LOG_SEGMENT_INVALID: log_segment_invalid,
        K.READ_NOT_COVERED: read_not_covered,
        K.EMERGENCY_NOT_PERMITTED: emergency_not_permitted,
    }


BANK_KINDS = [
    K.EMERGENCY_OUTSIDE_COMMUNITIES, K.EMERGENCY_WITHOUT_REASON, K.EMERGENCY_IDENTIFIERS_REVEALED,
    K.EMERGENCY_RATE_EXCEEDED, K.BLOB_MISSING, K.BLOB_HASH_MISMATCH, K.BLOB_UNANCHORED, K.MANIFEST_MISSING,
    K.MANIFEST_MISMATCH,
    K.VERSION_REPLAYED, K.ENTRY_NOT_ANCHORED, K.LOG_INCONSISTENT, K.LOG_SEGMENT_INVALID, K.READ_NOT_COVERED,
    K.EMERGENCY_NOT_PERMITTED, K.EVIDENCE_MISMATCH, K.ENTRY_BACKDATED, K.ENTRY_TIME_OUT_OF_ORDER,
]  # fmt: skip
#: The bank's emergency limit: the scenario's one break-glass read and three forged ones make four.
BANK_OPTIONS = VerifyOptions(emergency_per_hour=3)
NOT_IN_A_BUNDLE = {
    K.INDEX_MISMATCH: "the index is never in a bundle (see test_edited_index_rows_are_named)",
    K.CHAIN_UNREACHABLE: "a source that cannot be read stops the audit (exit 2), see test_unusable_sources_exit_2",
    K.INCLUSION_PROOF_INVALID: "implied by the manifest's rebuilt root: a leaf whose proof failed would have "
    "failed the root (manifest-mismatch) first",
}


def test_the_bank_covers_every_kind() -> None:
    assert set(BANK_KINDS) | set(NOT_IN_A_BUNDLE) == set(DiscrepancyKind)


@pytest.mark.parametrize("kind", BANK_KINDS, ids=lambda k: k.value)
def test_a_must_fail_bundle_is_rejected_for_its_reason(
    kind: DiscrepancyKind,
    scenario: Scenario,
    clean_bundle: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = BundleDocument.decode(clean_bundle)
    if kind is K.EVIDENCE_MISMATCH:
        grants = doc.section("grants")
        grants[0][8] += 86_400  # a grant's history rewritten, the digests left as they were
        doc.set_section("grants", grants)
    else:
        bank(scenario)[kind](doc)
        doc.reseal()
    evidence, found = decode_bundle(doc.encode())
    result = verify(evidence, found=found, options=BANK_OPTIONS)
    assert kinds(result) == {kind}, [d.line() for d in result.discrepancies]
    assert all(d.subject and d.detail and d.where for d in result.discrepancies)
    path = tmp_path / f"{kind.value}.bundle"
    path.write_bytes(doc.encode())
    limit = ["--emergency-per-hour", str(BANK_OPTIONS.emergency_per_hour)]
    assert ledger_main(["audit", "verify", "--bundle", str(path), *limit]) == 1
    out = capsys.readouterr().out
    assert f"{kind.value}: " in out
    assert f"FAILED: {len(result.discrepancies)} discrepancies" in out


@pytest.mark.parametrize("how", ["dropped", "altered"])
def test_a_refusal_dropped_or_altered_in_the_log_is_named(scenario: Scenario, clean_bundle: bytes, how: str) -> None:
    """A refused attempt is anchored like a release: removing it from the log, or rewriting why it was
    refused, breaks the anchored roots even when the forger recomputes the bundle's digests."""
    doc = BundleDocument.decode(clean_bundle)
    entries = _entries(doc)
    (index,) = scenario.refusal_entries
    assert '"kind":"refusal"' in entries[index]
    assert '"refusal":"REVOKED"' in entries[index]
    if how == "dropped":
        del entries[index]
    else:
        entries[index] = entries[index].replace('"refusal":"REVOKED"', '"refusal":"not_found"')
    doc.set_section("entries", entries)
    doc.reseal()
    result = verify(decode_bundle(doc.encode())[0])
    assert kinds(result) == {K.ENTRY_NOT_ANCHORED}, [d.line() for d in result.discrepancies]
    assert any(d.subject.startswith("tree head #") for d in result.discrepancies)


def test_a_read_after_its_grant_was_revoked_is_not_covered(scenario: Scenario, clean_bundle: bytes) -> None:
    doc = BundleDocument.decode(clean_bundle)
    bank(scenario)[K.READ_NOT_COVERED](doc)
    doc.reseal()
    result = verify(decode_bundle(doc.encode())[0])
    (discrepancy,) = result.discrepancies
    assert discrepancy.kind is K.READ_NOT_COVERED
    assert discrepancy.subject == f"access entry #{scenario.entries}"
    assert f"REVOKED at block {scenario.revoked_block}" in discrepancy.detail
    forged = result.reads[-1]
    assert not forged.covered
    assert forged.accessor_org == COMMITTEE


def test_a_read_decided_on_a_head_older_than_a_revocation_is_not_covered(
    scenario: Scenario, clean_bundle: bytes
) -> None:
    """Invariant 6 seen from the log: a read released 10 s after the revoking block was mined, but checked at
    the block before it, was decided on a stale head."""
    from datetime import UTC, datetime

    doc = BundleDocument.decode(clean_bundle)
    revoked_at = dict(doc.section("block_times"))[scenario.revoked_block]
    record_id, version = _incident_v2(doc, scenario)
    _forge_entry(
        doc, accessor_org=COMMITTEE, record_id=record_id, version=version, owner_org=POLICE,
        grant_id=scenario.revoked_grant, purpose="elderly_care", emergency=False,
        checked_block=scenario.revoked_block - 1, time=datetime.fromtimestamp(revoked_at + 10, UTC),
    )  # fmt: skip
    doc.reseal()
    result = verify(decode_bundle(doc.encode())[0])
    (discrepancy,) = result.discrepancies
    assert discrepancy.kind is K.READ_NOT_COVERED
    assert f"but checked at the stale block {scenario.revoked_block - 1}" in discrepancy.detail

    # The same read released within the tolerance of the revoking block's time is not a discrepancy.
    doc = BundleDocument.decode(clean_bundle)
    _forge_entry(
        doc, accessor_org=COMMITTEE, record_id=record_id, version=version, owner_org=POLICE,
        grant_id=scenario.revoked_grant, purpose="elderly_care", emergency=False,
        checked_block=scenario.revoked_block - 1, time=datetime.fromtimestamp(revoked_at + 1, UTC),
    )  # fmt: skip
    doc.reseal()
    assert verify(decode_bundle(doc.encode())[0]).ok


def test_a_read_released_after_its_grant_expired_is_not_covered(scenario: Scenario, clean_bundle: bytes) -> None:
    """Checked at a block when the grant was valid, but released well after ``valid_until``."""
    from datetime import UTC, datetime

    clean = verify(decode_bundle(clean_bundle)[0])
    grant = next(g for g in clean.grants if g.grant_id == scenario.expiring_grant)
    record = next(r for r in clean.records if r.owner_org == grant.owner_org and r.record_type in grant.record_types)
    doc = BundleDocument.decode(clean_bundle)
    _forge_entry(
        doc, accessor_org=grant.grantee_org, record_id=record.record_id, version=record.version,
        owner_org=grant.owner_org, grant_id=grant.grant_id, purpose=grant.purpose, emergency=False,
        checked_block=scenario.revoked_block, time=datetime.fromtimestamp(grant.valid_until + 5, UTC),
    )  # fmt: skip
    doc.reseal()
    (discrepancy,) = verify(decode_bundle(doc.encode())[0]).discrepancies
    assert discrepancy.kind is K.READ_NOT_COVERED
    assert "EXPIRED when the read was released" in discrepancy.detail


def test_a_forged_bundle_is_caught_by_the_node(scenario: Scenario, clean_bundle: bytes) -> None:
    """Offline, a consistent forgery verifies; against any node its chain facts do not."""
    from ledger_api.audit.bundle import cross_check

    doc = BundleDocument.decode(clean_bundle)
    grants = doc.section("grants")
    for grant in grants:
        if grant[0] == scenario.revoked_grant:
            grant[10] = 0  # hide the revocation
    doc.set_section("grants", grants, reseal=True)
    forged, found = decode_bundle(doc.encode())
    assert verify(forged, found=found).ok
    rpc = JsonRpc(url=scenario.rpc_url)
    try:
        node = collect_chain(rpc=rpc, deployment=scenario.deployment)
        header = rpc.block(forged.chain.checkpoint_block)
    finally:
        rpc.close()
    assert header is not None
    found = cross_check(forged, node, url=scenario.rpc_url, node_checkpoint_hash=str(header["hash"]))
    assert [(d.kind, d.subject) for d in found] == [(K.EVIDENCE_MISMATCH, "bundle section grants")]


# --- 1,000 random tampers ---------------------------------------------------------------------------------


@dataclass
class Workbench:
    """Copies of storage and index to tamper with (restored after each tamper), chain facts read once."""

    scenario: Scenario
    chain: ChainFacts
    store: LocalBlobStore
    index_url: str
    index_path: Path
    index_copy: bytes
    clean_bundle: bytes
    record_keys: list[str]
    record_of: dict[str, str]
    """Record blob key → its record id."""
    segment_keys: list[str]
    manifest_keys: list[str]

    def storage_result(self) -> AuditResult:
        storage = collect_storage(
            self.store,
            heads=self.chain.heads,
            manifest_keys={r.manifest_hash for r in self.chain.receipts},
            auditor=AUDITOR_KEY,
        )
        return verify(Evidence(chain=self.chain, storage=storage, source="tamper"))

    def bundle_result(self, doc: BundleDocument) -> AuditResult:
        evidence, found = decode_bundle(doc.encode())
        return verify(evidence, found=found)


@pytest.fixture(scope="module")
def workbench(
    scenario: Scenario, evidence: Evidence, clean_bundle: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Workbench:
    directory = tmp_path_factory.mktemp("tamper")
    shutil.copytree(scenario.blob_dir, directory / "blobs")
    index_path = Path(scenario.settings.index_url.removeprefix("sqlite:///"))
    for part in index_path.parent.glob(index_path.name + "*"):  # the database and its WAL, if any
        shutil.copy(part, directory / part.name.replace(index_path.name, "index.db"))
    with sqlite3.connect(directory / "index.db") as connection:  # fold the WAL in: one file to restore
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store = LocalBlobStore(root=directory / "blobs")
    record_keys, segment_keys = [], []
    record_of: dict[str, str] = {}
    for key in store.iter_keys():
        head = store.get(key)[:4]
        if head == BLOB_MAGIC:
            record_keys.append(key)
            record_of[key] = parse_blob(store.get(key)).header.record_id
        elif head == b"LDAS":
            segment_keys.append(key)
    return Workbench(
        scenario=scenario,
        chain=evidence.chain,
        store=store,
        index_url=f"sqlite:///{directory / 'index.db'}",
        index_path=directory / "index.db",
        index_copy=(directory / "index.db").read_bytes(),
        clean_bundle=clean_bundle,
        record_keys=record_keys,
        record_of=record_of,
        segment_keys=segment_keys,
        manifest_keys=sorted(evidence.storage.manifests),
    )


def _flip(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


@contextlib.contextmanager
def _restored(*paths: Path) -> Iterator[None]:
    """Put the files' bytes back however the tamper inside went (a deleted file comes back too)."""
    originals = {path: path.read_bytes() for path in paths}
    try:
        yield
    finally:
        for path, data in originals.items():
            path.write_bytes(data)


def tamper_storage(bench: Workbench, rng: random.Random, what: str) -> tuple[AuditResult, DiscrepancyKind, str]:
    store = bench.store
    if what in ("flip-blob", "flip-segment"):
        key = rng.choice(bench.record_keys if what == "flip-blob" else bench.segment_keys)
        with _restored(store.path_for(key)):
            _flip(store.path_for(key), rng)
            return bench.storage_result(), K.BLOB_HASH_MISMATCH if what == "flip-blob" else K.LOG_SEGMENT_INVALID, key
    if what == "delete-blob":
        key = rng.choice(bench.record_keys)
        with _restored(store.path_for(key)):
            store.path_for(key).unlink()
            # Named by the record version whose anchored blob is gone (for an erased version, the
            # deleted blob was its shredded form: the anchored one is gone by design).
            return bench.storage_result(), K.BLOB_MISSING, f"record {bench.record_of[key][:12]}"
    if what == "swap-blobs":
        first, second = rng.sample(bench.record_keys, 2)
        a, b = store.path_for(first), store.path_for(second)
        with _restored(a, b):
            data_a = a.read_bytes()
            a.write_bytes(b.read_bytes())
            b.write_bytes(data_a)
            return bench.storage_result(), K.BLOB_HASH_MISMATCH, first
    if what == "delete-manifest":
        key = rng.choice(bench.manifest_keys)
        with _restored(store.path_for(key)):
            store.path_for(key).unlink()
            return bench.storage_result(), K.MANIFEST_MISSING, key
    raise AssertionError(what)


INDEX_EDITS = (
    ("record_versions", "record_type", "'key_person'"),
    ("record_versions", "community_code", "'330199999'"),
    ("record_versions", "blob_key", "'" + "e" * 64 + "'"),
    ("record_versions", "leaf_index", "leaf_index + 1"),
    ("access_log_entries", "accessor_org", "'PM-LVCHENG-01'"),
    ("anchor_batches", "block_number", "block_number + 1"),
)


def tamper_index(bench: Workbench, rng: random.Random, result: AuditResult) -> tuple[list[Any], str]:
    from sqlalchemy import create_engine

    table, column, value = rng.choice(INDEX_EDITS)
    key = {"record_versions": "id", "access_log_entries": "seq", "anchor_batches": "id"}[table]
    engine = create_engine(bench.index_url)
    try:
        with engine.begin() as connection:
            ids = [row[0] for row in connection.execute(text(f"SELECT {key} FROM {table}"))]  # noqa: S608
            victim = rng.choice(ids)
            connection.execute(text(f"UPDATE {table} SET {column} = {value} WHERE {key} = {victim}"))  # noqa: S608
    finally:
        engine.dispose()
    try:
        evidence = Evidence(chain=bench.chain, storage=_clean_storage(bench), source="tamper")
        return check_index(bench.index_url, result, evidence), f"{table} {key}={victim}"
    finally:
        for leftover in bench.index_path.parent.glob("index.db-*"):
            leftover.unlink()
        bench.index_path.write_bytes(bench.index_copy)


_STORAGE_CACHE: dict[int, Any] = {}


def _clean_storage(bench: Workbench) -> Any:
    if id(bench) not in _STORAGE_CACHE:
        _STORAGE_CACHE[id(bench)] = decode_bundle(bench.clean_bundle)[0].storage
    return _STORAGE_CACHE[id(bench)]


def tamper_bundle(bench: Workbench, rng: random.Random, what: str) -> tuple[AuditResult, DiscrepancyKind, str]:
    doc = BundleDocument.decode(bench.clean_bundle)
    reseal = rng.random() < 0.5
    if what == "remove-entry":
        entries = _entries(doc)
        index = rng.randrange(len(entries))
        del entries[index]
        doc.set_section("entries", entries)
        named = "tree head #"
        expected = K.ENTRY_NOT_ANCHORED
    elif what == "reorder-entries":
        entries = _entries(doc)
        i, j = rng.sample(range(len(entries)), 2)
        entries[i], entries[j] = entries[j], entries[i]
        doc.set_section("entries", entries)
        named, expected = "tree head #", K.ENTRY_NOT_ANCHORED
    elif what == "rewrite-grant":
        grants = doc.section("grants")
        reads = {e["grant_id"] for e in map(__import__("json").loads, _entries(doc))}
        grant = rng.choice([g for g in grants if g[0] in reads])
        field, value = rng.choice([(10, grant[9]), (9, 10**9), (2, "AU-XIHU-01"), (3, "audit"), (4, ["hazard_report"])])
        grant[field] = value
        doc.set_section("grants", grants)
        named, expected = "access entry #", K.READ_NOT_COVERED
    elif what == "replay-version":
        receipts = doc.section("receipts")
        replay = list(rng.choice(receipts))
        replay[0] = max(r[0] for r in receipts) + 1
        replay[5] = doc.header["checkpoint_block"]
        doc.set_section("receipts", [*receipts, replay])
        named, expected = "record ", K.VERSION_REPLAYED
    else:
        raise AssertionError(what)
    if not reseal:
        # The digests were left alone: the section itself is named, offline.
        return bench.bundle_result(doc), K.EVIDENCE_MISMATCH, "bundle section"
    doc.reseal()
    return bench.bundle_result(doc), expected, named


STORAGE_TAMPERS = ("flip-blob", "delete-blob", "swap-blobs", "flip-segment", "delete-manifest")
BUNDLE_TAMPERS = ("remove-entry", "reorder-entries", "rewrite-grant", "replay-version")


def test_a_thousand_random_tampers_are_each_detected_and_named(workbench: Workbench) -> None:
    rng = random.Random(20260601)
    clean = workbench.storage_result()
    assert clean.ok, [d.line() for d in clean.discrepancies]
    assert (
        check_index(
            workbench.index_url, clean, Evidence(chain=workbench.chain, storage=_clean_storage(workbench), source="")
        )
        == []
    )
    counts: dict[str, int] = {}
    kinds_of = [*STORAGE_TAMPERS, *BUNDLE_TAMPERS, "edit-index-row"]
    for number in range(1000):
        what = kinds_of[number % len(kinds_of)] if number < len(kinds_of) else rng.choice(kinds_of)
        counts[what] = counts.get(what, 0) + 1
        if what == "edit-index-row":
            found, victim = tamper_index(workbench, rng, clean)
            assert found, f"tamper {number}: index edit of {victim} not detected"
            assert {d.kind for d in found} == {K.INDEX_MISMATCH}
            assert any(victim.split()[1] in d.subject or victim.split()[0] in d.where for d in found), victim
            continue
        if what in STORAGE_TAMPERS:
            result, expected, named = tamper_storage(workbench, rng, what)
        else:
            result, expected, named = tamper_bundle(workbench, rng, what)
        assert result.discrepancies, f"tamper {number} ({what}) not detected"
        hits = [d for d in result.discrepancies if d.kind is expected]
        assert hits, (
            f"tamper {number} ({what}): expected {expected.value}, got {[d.line() for d in result.discrepancies]}"
        )
        assert any(named in d.line() for d in result.discrepancies), f"tamper {number} ({what}) names no {named}"
    assert sum(counts.values()) == 1000
    assert set(counts) == set(kinds_of)


# --- last: it changes this module's chain and storage ------------------------------------------------------


def test_a_forged_read_anchored_on_chain_by_the_log_writer_is_not_covered(
    scenario: Scenario, evidence: Evidence, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dishonest gateway (it holds the log writer's key) logs a read under a grant revoked before it and
    anchors it properly: segment in storage, tree head on chain. The log is intact; the read is not covered."""
    from datetime import UTC, datetime

    from ledger_api.accesslog.entry import Entry
    from ledger_api.accesslog.segment import seal_segment
    from ledger_api.chain.devnet import dev_account
    from ledger_api.chain.tree_heads import TreeHeadWriter
    from ledger_api.crypto import hpke
    from ledger_api.provision import LOG_WRITER_ACCOUNT

    entries = list(evidence.storage.entries)
    forged = Entry.create(
        accessor_org=COMMITTEE, record_id=scenario.incident.record_id, version=2, owner_org=POLICE,
        grant_id=scenario.revoked_grant, purpose="elderly_care", emergency=False,
        checked_block=scenario.revoked_block, time=datetime.now(UTC), request_id="forged-on-chain",
    )  # fmt: skip
    tree = MerkleTree.from_leaf_hashes(leaf_hash(data) for data in [*entries, forged.leaf_data()])
    auditor_public = hpke.public_key_from_private(AUDITOR_KEY.private_key)
    segment = seal_segment(
        from_index=len(entries), to_index=tree.size, root=tree.root(), leaf_data=[forged.leaf_data()],
        recipients={AUDITOR_KEY.org_id: (AUDITOR_KEY.key_index, auditor_public)},
    )  # fmt: skip
    LocalBlobStore(root=scenario.blob_dir).put(segment)
    rpc = JsonRpc(url=scenario.rpc_url)
    try:
        writer = TreeHeadWriter(
            rpc=rpc, signer=dev_account(LOG_WRITER_ACCOUNT), address=scenario.deployment.address("AccessLogAnchors"),
            chain_id=scenario.deployment.chain_id,
        )  # fmt: skip
        tx = writer.sign(TreeHeadWriter.anchor_calldata(tree.size, tree.root()), nonce=writer.nonces()[1])
        writer.broadcast(tx)
        wait_until(lambda: writer.receipt(tx.tx_hash) is not None)
        result = verify(
            collect_evidence(
                rpc=rpc,
                deployment=scenario.deployment,
                store=LocalBlobStore(root=scenario.blob_dir),
                auditor=AUDITOR_KEY,
            )
        )
    finally:
        rpc.close()
    assert [(d.kind, d.subject) for d in result.discrepancies] == [
        (K.READ_NOT_COVERED, f"access entry #{len(entries)}")
    ]
    assert f"REVOKED at block {scenario.revoked_block}" in result.discrepancies[0].detail
    assert ledger_main(["audit", "verify", *source_args(scenario)]) == 1
    assert f"read-not-covered: access entry #{len(entries)}" in capsys.readouterr().out
