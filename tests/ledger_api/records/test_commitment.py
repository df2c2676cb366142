"""The redactable commitment: a masked read still opens the anchored commitment, and nothing else does."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from ledger_api.chain.encoding import Purpose
from ledger_api.records.commitment import (
    COMMITMENT_SCHEME,
    LEGACY_COMMITMENT,
    RECORD_COMMITMENT,
    V2_COMMITMENT,
    V2_SCHEME,
    CommitmentOpening,
    RedactableCommitment,
    commitment_of,
    open_commitment,
    sealed_under,
    verify_opening,
)
from ledger_api.records.masking import mask_record

RECORD: dict[str, Any] = {
    "record_id": "ab" * 32,
    "record_type": "incident",
    "community_code": "330102002",
    "owner_org": "PS-XIHU-01",
    "occurred_at": "2025-03-01T08:00:00+08:00",
    "location": {"text": "翠苑一区 3 幢"},
    "subjects": [
        {"name": "王某", "id_number": "330102195001011234", "phone": "13800001111"},
        {"name": "李某", "id_number": "33010219600202567X"},
        {"name": "无证件"},
    ],
    "attributes": {"category": "求助", "elderly": True, "count": 2},
}
SALT = bytes(range(32))
DATA_KEY = bytes(range(32, 64))
COMMITMENT = commitment_of(RECORD, salt=SALT, data_key=DATA_KEY)


def read_as(purpose: Purpose | None) -> tuple[dict[str, Any], CommitmentOpening]:
    received, masked = mask_record(copy.deepcopy(RECORD), purpose)
    return received, open_commitment(RECORD, salt=SALT, data_key=DATA_KEY, masked_paths=masked)


@pytest.mark.parametrize("purpose", [None, *[p for p in Purpose if p is not Purpose.NONE]])
def test_every_purpose_opens_the_anchored_commitment(purpose: Purpose | None) -> None:
    received, opening = read_as(purpose)
    assert verify_opening(received, opening, COMMITMENT)
    # And through JSON, as a client receives it.
    assert verify_opening(received, CommitmentOpening.from_json(opening.to_json()), COMMITMENT)


def test_a_masked_read_reveals_no_field_salt_of_what_it_masks() -> None:
    received, opening = read_as(Purpose.ELDERLY_CARE)
    assert set(opening.masked) == {"subjects[0].id_number", "subjects[1].id_number"}
    assert set(opening.revealed) == {"subjects[0].phone"}
    assert received["subjects"][0]["id_number"] != RECORD["subjects"][0]["id_number"]
    full = open_commitment(RECORD, salt=SALT, data_key=DATA_KEY, masked_paths=())
    # The digest given for a masked ID number cannot be recomputed without its field salt.
    assert full.revealed["subjects[0].id_number"] not in str(opening.to_json())


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("a changed attribute", lambda r, o: r["attributes"].update(count=3)),
        ("a changed revealed phone", lambda r, o: r["subjects"][0].update(phone="13800002222")),
        ("a dropped subject", lambda r, o: r["subjects"].pop()),
        ("an added field", lambda r, o: r.update(extra=1)),
        (
            "a swapped masked digest",
            lambda r, o: o.masked.update({"subjects[0].id_number": o.masked["subjects[1].id_number"]}),
        ),
        ("a masked value presented as revealed", lambda r, o: o.revealed.update({"subjects[1].id_number": "00" * 32})),
        ("a missing opening for a value", lambda r, o: o.revealed.pop("subjects[0].phone")),
        ("another salt", lambda r, o: object.__setattr__(o, "salt", "11" * 32)),
    ],
)
def test_any_change_fails_to_open(what: str, change: Any) -> None:
    received, opening = read_as(Purpose.ELDERLY_CARE)
    opening = CommitmentOpening.from_json(opening.to_json())
    change(received, opening)
    assert not verify_opening(received, opening, COMMITMENT), what


def test_the_commitment_depends_on_salt_and_data_key_and_is_the_envelope_scheme() -> None:
    import json

    plaintext = json.dumps(RECORD, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert RedactableCommitment().commit(plaintext=plaintext, salt=SALT, data_key=DATA_KEY) == COMMITMENT
    assert commitment_of(RECORD, salt=os.urandom(32), data_key=DATA_KEY) != COMMITMENT
    assert commitment_of(RECORD, salt=SALT, data_key=os.urandom(32)) != COMMITMENT


def test_a_record_sealed_under_the_legacy_scheme_opens_only_when_nothing_is_masked() -> None:
    import json

    from ledger_api.crypto.envelope import compute_commitment
    from ledger_api.records.commitment import legacy_opening

    plaintext = json.dumps(RECORD, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    anchored = compute_commitment(plaintext, SALT)
    assert verify_opening(copy.deepcopy(RECORD), legacy_opening(salt=SALT, masked=False), anchored)
    received, masked = mask_record(copy.deepcopy(RECORD), Purpose.ELDERLY_CARE)
    assert masked
    assert not verify_opening(received, legacy_opening(salt=SALT, masked=True), anchored)
    changed = copy.deepcopy(RECORD)
    changed["attributes"]["count"] = 3
    assert not verify_opening(changed, legacy_opening(salt=SALT, masked=False), anchored)


# ---- v3: what derives from a masked value is committed one by one too; v2 records open as before ----

# A resident: its native id is its ID number, and its birth date and gender are that number's digits.
RESIDENT: dict[str, Any] = {
    **RECORD,
    "record_type": "resident",
    "source": {"system": "committee.residents", "native_id": "33010619750224896X", "file": "r.csv", "row": 2},
    "subjects": [
        {"role": "resident", "name": "谢勇", "id_number": "33010619750224896X", "phone": "13777926390",
         "birth_date": "1975-02-24", "gender": "male"},
    ],
    "attributes": {"care_category": "低保户", "note": "家属电话13800001111", "gender_as_written": "男性"},
}  # fmt: skip
RESIDENT_PATHS = {
    "source.native_id", "subjects[0].id_number", "subjects[0].phone", "subjects[0].birth_date",
    "subjects[0].gender", "attributes.note", "attributes.gender_as_written",
}  # fmt: skip
# The v2 commitments of RECORD and of INCIDENT with SALT and DATA_KEY, computed by the v2 code as it was
# before v3 (main at 2389915): records sealed then must keep opening to exactly these values.
RECORD_V2 = "efb58edd636617052694a0dfc4d2d6558bb0af6d8ddcd76716bbd2ca29003eaa"
INCIDENT: dict[str, Any] = {
    **RECORD,
    "subjects": [
        {"name": "王某", "id_number": "330102195001011234", "phone": "13800001111", "birth_date": "1950-01-01",
         "gender": "male"},
        {"name": "无证件"},
    ],
}  # fmt: skip
INCIDENT_V2 = "2b88d47b03d7ed1538d8a677ed10f57bd771278c2227e8f06014bc8ff24c7b5d"


def plaintext_of(record: dict[str, Any]) -> bytes:
    import json

    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("purpose", [None, *[p for p in Purpose if p is not Purpose.NONE]])
def test_a_masked_v3_read_of_a_resident_opens_without_revealing_what_it_masks(purpose: Purpose | None) -> None:
    anchored = RECORD_COMMITMENT.commit(plaintext=plaintext_of(RESIDENT), salt=SALT, data_key=DATA_KEY)
    received, masked = mask_record(copy.deepcopy(RESIDENT), purpose)
    opening = open_commitment(RESIDENT, salt=SALT, data_key=DATA_KEY, masked_paths=masked)
    assert opening.scheme == COMMITMENT_SCHEME
    assert set(opening.revealed) | set(opening.masked) == RESIDENT_PATHS
    assert set(opening.masked) == set(masked)
    assert verify_opening(received, CommitmentOpening.from_json(opening.to_json()), anchored)
    full = open_commitment(RESIDENT, salt=SALT, data_key=DATA_KEY, masked_paths=())
    for path in masked:  # no field salt of a masked field is handed over
        assert full.revealed[path] not in str(opening.to_json())
    if purpose is Purpose.ELDERLY_CARE:
        assert "source.native_id" in masked
        assert "subjects[0].birth_date" in masked
        assert "subjects[0].phone" not in masked


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("the masked native id passed off as revealed", lambda r, o: o.revealed.update(
            {"source.native_id": o.masked.pop("source.native_id")})),
        ("a masked birth date's digest swapped", lambda r, o: o.masked.update(
            {"subjects[0].birth_date": o.masked["subjects[0].gender"]})),
        ("a masked field dropped from the opening", lambda r, o: o.masked.pop("subjects[0].birth_date")
         and r["subjects"][0].update(birth_date="1975-02-24")),
        ("a changed revealed phone", lambda r, o: r["subjects"][0].update(phone="13800002222")),
        ("a masked id number claimed revealed", lambda r, o: o.revealed.update({"subjects[0].id_number": "00" * 32})),
        ("a path the copy does not have", lambda r, o: o.masked.update({"attributes.nowhere": "00" * 32})),
        ("a changed attribute", lambda r, o: r["attributes"].update(care_category="残疾人")),
    ],
)  # fmt: skip
def test_any_change_to_a_masked_v3_read_fails_to_open(what: str, change: Any) -> None:
    anchored = commitment_of(RESIDENT, salt=SALT, data_key=DATA_KEY)
    received, masked = mask_record(copy.deepcopy(RESIDENT), Purpose.ELDERLY_CARE)
    opening = CommitmentOpening.from_json(
        open_commitment(RESIDENT, salt=SALT, data_key=DATA_KEY, masked_paths=masked).to_json()
    )
    assert verify_opening(received, opening, anchored)
    change(received, opening)
    assert not verify_opening(received, opening, anchored), what


def test_a_v2_record_keeps_its_commitment_and_every_read_of_it_opens_as_before() -> None:
    """RECORD holds nothing derived from a masked value: each read masks only what v2 committed one by
    one, so every purpose's copy opens the v2 commitment anchored before v3."""
    assert V2_COMMITMENT.commit(plaintext=plaintext_of(RECORD), salt=SALT, data_key=DATA_KEY) == RECORD_V2
    assert RECORD_COMMITMENT.commit(plaintext=plaintext_of(RECORD), salt=SALT, data_key=DATA_KEY) != RECORD_V2
    found = sealed_under(plaintext=plaintext_of(RECORD), salt=SALT, data_key=DATA_KEY, commitment=RECORD_V2)
    assert found is V2_COMMITMENT
    for purpose in [None, *[p for p in Purpose if p is not Purpose.NONE]]:
        received, masked = mask_record(copy.deepcopy(RECORD), purpose)
        opening = open_commitment(RECORD, salt=SALT, data_key=DATA_KEY, masked_paths=masked, scheme=V2_SCHEME)
        assert opening.scheme == V2_SCHEME
        assert verify_opening(received, CommitmentOpening.from_json(opening.to_json()), RECORD_V2), purpose


def test_a_v2_record_with_a_birth_date_stays_masked_and_its_masked_copy_does_not_open() -> None:
    """v2 committed the birth date inside the outer hash: a copy that withholds it cannot open v2. The
    birth date stays withheld all the same (with it the masked ID number is rebuilt, invariant 8)."""
    assert commitment_of(INCIDENT, salt=SALT, data_key=DATA_KEY, scheme=V2_SCHEME) == INCIDENT_V2
    for purpose in (None, Purpose.INVESTIGATION, Purpose.EMERGENCY_RESPONSE):  # nothing derived is masked
        received, masked = mask_record(copy.deepcopy(INCIDENT), purpose)
        opening = open_commitment(INCIDENT, salt=SALT, data_key=DATA_KEY, masked_paths=masked, scheme=V2_SCHEME)
        assert verify_opening(received, opening, INCIDENT_V2), purpose
    received, masked = mask_record(copy.deepcopy(INCIDENT), Purpose.ELDERLY_CARE)
    assert received["subjects"][0]["birth_date"] is None
    assert "subjects[0].birth_date" in masked
    opening = open_commitment(INCIDENT, salt=SALT, data_key=DATA_KEY, masked_paths=masked, scheme=V2_SCHEME)
    assert set(opening.masked) == {"subjects[0].id_number"}  # all v2 can cover
    assert not verify_opening(received, opening, INCIDENT_V2)


def test_the_scheme_a_version_was_sealed_under_is_found_newest_first() -> None:
    plaintext = plaintext_of(RESIDENT)
    for scheme in (RECORD_COMMITMENT, V2_COMMITMENT, LEGACY_COMMITMENT):
        anchored = scheme.commit(plaintext=plaintext, salt=SALT, data_key=DATA_KEY)
        assert sealed_under(plaintext=plaintext, salt=SALT, data_key=DATA_KEY, commitment=anchored) is scheme
    assert sealed_under(plaintext=plaintext, salt=SALT, data_key=DATA_KEY, commitment="00" * 32) is None
