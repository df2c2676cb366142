"""Subject access report: exactly the reads of records about one person, found by ID number and the key."""

from __future__ import annotations

import json
import secrets

import pytest

from adapters.canonical import blind_index, normalise_id_number
from ledger_api.audit.errors import AuditError
from ledger_api.audit.model import AuditResult, VerifiedRecord
from ledger_api.audit.subject import InvalidIdNumberError, mask_id_number, subject_access
from tests.ledger_api.audit.report_samples import (
    COMMITTEE,
    POLICE,
    PROPERTY,
    local,
    make_read,
    record_id,
    week_result,
)

KEY = bytes.fromhex("5a" * 32)
# Zhang (first-generation 15-digit card; 18 digits once upgraded, check character X), Li, and Wang.
ZHANG_15, ZHANG_18 = "330102800101123", "33010219800101123X"
LI = "110105199003071239"
WANG = "330102197512310026"


def index(id_number: str, key: bytes = KEY) -> str:
    return blind_index(key, "id_number", normalise_id_number(id_number))


def record(n: int, version: int, *subjects: str, record_type: str = "incident") -> VerifiedRecord:
    return VerifiedRecord(
        record_id=record_id(n), version=version, owner_org=POLICE, record_type=record_type,
        community_code="330102002", ciphertext_hash="ab" * 32, batch_root="cd" * 32, leaf_index=n,
        block_number=100 + n, transaction="0x" + "ef" * 32, anchored_at=local(1, 9),
        subjects=tuple(index(s) for s in subjects),
    )  # fmt: skip


def people_result() -> AuditResult:
    records = (
        record(10, 1, ZHANG_18),  # Zhang alone
        record(11, 1, LI),  # Li alone
        record(11, 2, LI, ZHANG_18),  # version 2 of Li's record adds Zhang
        record(12, 1, WANG, record_type="resident"),
    )
    reads = (
        make_read(COMMITTEE, local(2, 10), record=10, entry_index=0, subjects=records[0].subjects),
        make_read(PROPERTY, local(2, 11), record=11, version=1, entry_index=1, subjects=records[1].subjects),
        make_read(POLICE, local(3, 9), record=11, version=2, entry_index=2, subjects=records[2].subjects),
        make_read(
            COMMITTEE, local(2, 9), record=12, record_type="resident", entry_index=3, subjects=records[3].subjects
        ),
        make_read(PROPERTY, local(4, 23), record=10, entry_index=4, emergency=True, subjects=records[0].subjects),
        # The log says the read was of a version the records list lacks: found by the read's own subjects.
        make_read(POLICE, local(5, 8), record=13, entry_index=5, subjects=(index(ZHANG_18),)),
    )  # fmt: skip
    return week_result(reads=reads, records=records, discrepancies=())


def test_finds_exactly_the_persons_reads_in_time_order() -> None:
    report = subject_access(people_result(), id_number=ZHANG_18, consortium_key=KEY)
    assert [(r.entry_index, r.accessor_org, r.record_id[-2:], r.version) for r in report.reads] == [
        (0, COMMITTEE, "0a", 1),
        (2, POLICE, "0b", 2),
        (4, PROPERTY, "0a", 1),
        (5, POLICE, "0d", 1),
    ]
    assert [(r.record_id[-2:], r.version) for r in report.records] == [("0a", 1), ("0b", 2)]
    emergency = report.reads[2]
    assert (emergency.emergency, emergency.purpose, emergency.grant_id) == (True, "emergency_response", 0)
    assert emergency.time.isoformat() == "2026-03-04T23:00:00+08:00"
    assert report.audit_ok


def test_another_person_sees_only_their_own_reads() -> None:
    li = subject_access(people_result(), id_number=LI, consortium_key=KEY)
    assert [r.entry_index for r in li.reads] == [1, 2]  # version 1 and version 2 of record 11
    wang = subject_access(people_result(), id_number=WANG, consortium_key=KEY)
    assert [(r.entry_index, r.record_type) for r in wang.reads] == [(3, "resident")]


def test_a_15_digit_number_and_a_spaced_lower_case_one_find_the_18_digit_subject() -> None:
    expected = [0, 2, 4, 5]
    for spelling in (ZHANG_15, ZHANG_18.lower(), "330102 19800101 123x", "３３０１０２８００１０１１２３"):
        report = subject_access(people_result(), id_number=spelling, consortium_key=KEY)
        assert [r.entry_index for r in report.reads] == expected, spelling


def test_the_wrong_key_finds_nothing() -> None:
    report = subject_access(people_result(), id_number=ZHANG_18, consortium_key=secrets.token_bytes(32))
    assert report.reads == ()
    assert report.records == ()
    assert "no read of a record about this person is logged" in report.to_text()


def test_the_report_shows_the_number_masked_and_never_the_blind_index() -> None:
    report = subject_access(people_result(), id_number=ZHANG_15, consortium_key=KEY)
    for text in (report.to_json(), report.to_text(), repr(report)):
        assert index(ZHANG_18) not in text
        assert ZHANG_18 not in text
        assert ZHANG_15 not in text
    assert report.id_number_masked == "330102**********3X" == mask_id_number(ZHANG_18)
    document = json.loads(report.to_json())
    assert document["id_number"] == "330102**********3X"
    assert [read["entry_index"] for read in document["reads"]] == [0, 2, 4, 5]
    assert set(document["reads"][0]) >= {"accessor_org", "time", "purpose", "grant_id", "record_id", "version"}
    text = report.to_text()
    assert "CM-CUIYUAN-01 read incident" in text
    assert "EMERGENCY" in text


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("330102198001011230", "check character"),
        ("3301021980010112", "17 digits"),
        ("330102298001011234", "birth date"),
    ],
)
def test_an_invalid_number_is_refused_with_a_reason_that_does_not_repeat_it(bad: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumberError, match=reason) as caught:
        subject_access(people_result(), id_number=bad, consortium_key=KEY)
    assert bad not in str(caught.value)
    assert isinstance(caught.value, AuditError)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(AuditError, match="consortium key"):
        subject_access(people_result(), id_number=ZHANG_18, consortium_key=b"")


def test_discrepancies_mark_the_list_as_possibly_incomplete() -> None:
    result = week_result()  # has discrepancies
    report = subject_access(result, id_number=ZHANG_18, consortium_key=KEY)
    assert report.audit_ok is False
