"""The redactable commitment: a masked read still opens the anchored commitment, and nothing else does."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from ledger_api.chain.encoding import Purpose
from ledger_api.records.commitment import (
    CommitmentOpening,
    RedactableCommitment,
    commitment_of,
    open_commitment,
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
