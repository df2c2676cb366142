"""Break-glass bounds and refusals as the verifier checks them, on synthetic evidence (no devnet): a log
written by a dishonest gateway names each breach with its own kind; logs written before (v1 entries,
v2 bundles without community histories) verify as they did."""

from __future__ import annotations

import dataclasses
import gzip
from typing import Any

import pytest

from ledger_api.accesslog.entry import Entry
from ledger_api.audit.bench import synthetic_evidence
from ledger_api.audit.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_V2, BundleDocument, decode_bundle, encode_bundle
from ledger_api.audit.evidence import Evidence
from ledger_api.audit.model import DiscrepancyKind
from ledger_api.audit.report import build_report
from ledger_api.audit.verifier import VerifyOptions, verify
from ledger_api.merkle import MerkleTree, leaf_hash

K = DiscrepancyKind
POLICE = "PS-XIHU-01"  # the synthetic evidence's police organisation
COMMUNITY = "330102001"  # the community of every synthetic record
STATED = {
    "reason_class": "life_threat", "reason": "a person unconscious", "incident_ref": "110-0001",
    "revealed": ("id_number", "phone"),
}  # fmt: skip


def evidence_with(changes: dict[int, dict[str, Any]], *, served: tuple[str, ...] = (COMMUNITY,)) -> Evidence:
    """Synthetic evidence whose entries ``changes`` names are rewritten (and every head re-rooted: what a
    dishonest log writer holding the anchoring key could anchor), the police serving ``served``."""
    evidence = synthetic_evidence(records=10, entries=30, batch=10, head_every=10)
    entries = list(evidence.storage.entries)
    for index, fields in changes.items():
        entry = Entry.from_leaf_data(entries[index])
        entries[index] = Entry.create(**{**entry.model_dump(), **fields}).leaf_data()
    tree = MerkleTree.from_leaf_hashes(leaf_hash(data) for data in entries)
    heads = tuple(dataclasses.replace(h, root=tree.root(h.size).hex()) for h in evidence.chain.heads)
    chain = dataclasses.replace(evidence.chain, heads=heads, communities={POLICE: ((2, served),)})
    return dataclasses.replace(
        evidence, chain=chain, storage=dataclasses.replace(evidence.storage, entries=tuple(entries))
    )


def break_glass(**fields: Any) -> dict[str, Any]:
    return {
        "accessor_org": POLICE,
        "grant_id": 0,
        "purpose": "emergency_response",
        "emergency": True,
        **STATED,
        **fields,
    }


def kinds(evidence: Evidence, options: VerifyOptions | None = None) -> list[DiscrepancyKind]:
    return [d.kind for d in verify(evidence, options=options or VerifyOptions()).discrepancies]


def test_a_break_glass_read_within_its_bounds_is_listed_for_review() -> None:
    result = verify(evidence_with({5: break_glass()}))
    assert result.ok, [d.line() for d in result.discrepancies]
    (read,) = result.emergency_reads
    assert (read.entry_index, read.reason_class, read.incident_ref, read.revealed) == (
        5, "life_threat", "110-0001", ("id_number", "phone"))  # fmt: skip
    assert build_report(result).to_json_dict()["emergency_reads"][0]["incident_ref"] == "110-0001"


@pytest.mark.parametrize(
    ("fields", "served", "kind"),
    [
        ({}, ("330102002",), K.EMERGENCY_OUTSIDE_COMMUNITIES),
        ({"reason": None}, (COMMUNITY,), K.EMERGENCY_WITHOUT_REASON),
        ({"incident_ref": None}, (COMMUNITY,), K.EMERGENCY_WITHOUT_REASON),
        ({"reason_class": "curiosity"}, (COMMUNITY,), None),  # not in the vocabulary: both bounds broken
        ({"reason_class": "public_order"}, (COMMUNITY,), K.EMERGENCY_IDENTIFIERS_REVEALED),
        ({"reason_class": "fire_or_hazard"}, (COMMUNITY,), K.EMERGENCY_IDENTIFIERS_REVEALED),
        ({"revealed": None}, (COMMUNITY,), K.EMERGENCY_IDENTIFIERS_REVEALED),  # unstated: everything shown
    ],
    ids=["outside", "no-reason", "no-incident", "unknown-class", "public-order-ids", "fire-ids", "unstated"],
)
def test_each_broken_bound_is_named_with_its_kind(
    fields: dict[str, Any], served: tuple[str, ...], kind: DiscrepancyKind | None
) -> None:
    result = verify(evidence_with({5: break_glass(**fields)}, served=served))
    expected = [kind] if kind else [K.EMERGENCY_WITHOUT_REASON, K.EMERGENCY_IDENTIFIERS_REVEALED]
    assert [d.kind for d in result.discrepancies] == expected
    assert all(d.subject == "access entry #5" for d in result.discrepancies)
    assert not result.reads[5].covered


def test_the_communities_served_at_the_checked_block_decide() -> None:
    evidence = evidence_with({5: break_glass()})
    checked = Entry.from_leaf_data(evidence.storage.entries[5]).checked_block
    later = dataclasses.replace(  # the community was added only after the read was decided
        evidence.chain, communities={POLICE: ((2, ("330102002",)), (checked + 1, (COMMUNITY,)))}
    )
    assert kinds(dataclasses.replace(evidence, chain=later)) == [K.EMERGENCY_OUTSIDE_COMMUNITIES]
    earlier = dataclasses.replace(evidence.chain, communities={POLICE: ((2, ("330102002",)), (checked, (COMMUNITY,)))})
    assert kinds(dataclasses.replace(evidence, chain=earlier)) == []


def test_break_glass_reads_beyond_the_hourly_limit_are_named() -> None:
    """Entries a second apart: with 3 an hour, the fourth break-glass read is over the limit; a refusal
    decided after its token was taken counts towards it, one refused for its missing reason does not."""
    reads = {i: break_glass() for i in (3, 4, 5, 6)}
    assert kinds(evidence_with(reads), VerifyOptions(emergency_per_hour=3)) == [K.EMERGENCY_RATE_EXCEEDED]
    assert verify(evidence_with(reads), options=VerifyOptions(emergency_per_hour=3)).discrepancies[0].subject == (
        "access entry #6"
    )
    assert kinds(evidence_with(reads), VerifyOptions(emergency_per_hour=4)) == []
    token_refusal = {"kind": "refusal", "refusal": "emergency_outside_communities", "revealed": None}
    with_refusal = {**{i: break_glass() for i in (3, 4, 6)}, 5: break_glass(**token_refusal)}
    assert kinds(evidence_with(with_refusal), VerifyOptions(emergency_per_hour=3)) == [K.EMERGENCY_RATE_EXCEEDED]
    no_token = {**token_refusal, "refusal": "emergency_without_reason"}
    without = {**{i: break_glass() for i in (3, 4, 6)}, 5: break_glass(**no_token)}
    assert kinds(evidence_with(without), VerifyOptions(emergency_per_hour=3)) == []


def test_v1_entries_verify_as_before_unless_written_after_v2_ones() -> None:
    """Logs written before break-glass bounds: a v1 emergency read states nothing and is listed for review;
    a v1 entry after v2 ones is a downgrade that would dodge the bounds."""
    old = {i: {"format_version": 1} for i in range(30)}
    legacy = {**old, 5: {"format_version": 1, "accessor_org": POLICE, "grant_id": 0, "emergency": True}}
    result = verify(evidence_with(legacy, served=("330102002",)))
    assert result.ok, [d.line() for d in result.discrepancies]
    assert [r.entry_index for r in result.emergency_reads] == [5]
    downgraded = {**legacy, 2: {}}  # entry 2 written as v2 by this gateway, entry 5 then as v1
    # It states no reason, nor what it showed (so everything counts as shown).
    assert kinds(evidence_with(downgraded)) == [K.EMERGENCY_WITHOUT_REASON, K.EMERGENCY_IDENTIFIERS_REVEALED]


def test_refusals_are_listed_counted_and_survive_the_bundle_round_trip() -> None:
    refused = {"kind": "refusal", "refusal": "OUT_OF_SCOPE", "revealed": None}
    missing = {"kind": "refusal", "refusal": "not_found", "owner_org": "", "revealed": None, "record_id": "0" * 64}
    evidence = evidence_with({7: refused, 8: missing})
    result = verify(evidence)
    assert result.ok, [d.line() for d in result.discrepancies]
    assert [(r.entry_index, r.refusal, r.owner_org) for r in result.refusals] == [
        (7, "OUT_OF_SCOPE", "PM-LVCHENG-01"), (8, "not_found", "")]  # fmt: skip
    assert len(result.reads) == 28
    loaded, found = decode_bundle(encode_bundle(evidence))
    assert found == []
    assert verify(loaded).refusals == result.refusals
    report = build_report(result).to_json_dict()
    assert report["summary"]["refusals"] == 2
    assert [r["refusal"] for r in report["refusals"]] == ["OUT_OF_SCOPE", "not_found"]
    reader = next(o for o in report["organisations"] if o["org_id"] == "CM-CUIYUAN-01")
    assert (reader["refusals"], reader["reads_made"]) == (2, 28)
    owner = next(o for o in report["organisations"] if o["org_id"] == "PM-LVCHENG-01")
    assert owner["refusals_of_its_records"] == 1
    # Altered or dropped, a refusal no longer rebuilds the anchored heads.
    entries = list(evidence.storage.entries)
    altered = dataclasses.replace(
        evidence.storage, entries=(*entries[:7], entries[7].replace(b"OUT_OF_SCOPE", b"EXPIRED"), *entries[8:])
    )
    assert K.ENTRY_NOT_ANCHORED in kinds(dataclasses.replace(evidence, storage=altered))
    dropped = dataclasses.replace(evidence.storage, entries=(*entries[:7], *entries[8:]))
    assert K.ENTRY_NOT_ANCHORED in kinds(dataclasses.replace(evidence, storage=dropped))


def test_a_v2_bundle_reads_without_community_histories_and_skips_that_bound() -> None:
    evidence = evidence_with({5: break_glass()}, served=("330102002",))
    assert kinds(evidence) == [K.EMERGENCY_OUTSIDE_COMMUNITIES]
    document = BundleDocument.decode(encode_bundle(evidence))
    assert document.header["format"] == BUNDLE_FORMAT
    document.header["format"] = BUNDLE_FORMAT_V2
    del document.texts["communities"]
    document.reseal()
    assert b"communities [" not in gzip.decompress(document.encode())
    loaded, found = decode_bundle(document.encode())
    assert found == []
    assert loaded.chain.communities_known is False
    assert verify(loaded).ok  # nothing to check the reach against: not a breach
