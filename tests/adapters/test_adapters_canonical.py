"""The canonical record, its published schema, ids, fingerprints and blind-index helpers."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema_rs
import pytest
from pydantic import ValidationError

from adapters import (
    CanonicalRecord,
    Location,
    RecordType,
    Subject,
    blind_index,
    canonical_json,
    derive_legacy_record_id,
    derive_record_id,
    normalise_address,
    normalise_id_number,
    record_json_schema,
)
from adapters.canonical import SCHEMA_PATH, SCHEMA_VERSION
from tests.adapters.conftest import RECORD_ID_KEY as KEY

CST = timezone(timedelta(hours=8))


def record(**changes: Any) -> CanonicalRecord:
    data: dict[str, Any] = {
        "record_type": RecordType.INCIDENT,
        "community_code": "330106001001",
        "owner_org": "org-police-1",
        "source": {"system": "police.incidents", "native_id": "J1", "file": "a.csv", "row": 2},
        "occurred_at": datetime(2025, 3, 14, 8, 5, tzinfo=CST),
        "location": Location(building="10", unit="1", room="1502", text="清河社区10幢1单元1502室"),
        "subjects": [Subject(role="reporter", name="张三", phone="13800138000")],
        "attributes": {"category": "治安", "n": 1, "list": [1, "a", None], "nested": {"x": True}},
        "sensitivity": {"subjects[].phone": "sensitive"},
    }
    data.update(changes)
    source = data["source"]
    data.setdefault("record_id", derive_record_id(KEY, data["owner_org"], data["record_type"], source["native_id"]))
    return CanonicalRecord.model_validate(data)


def test_published_schema_file_is_current() -> None:
    on_disk = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert on_disk == record_json_schema(), (
        f"{SCHEMA_PATH.name} is stale: regenerate it with `python -m adapters.schema` and commit the result"
    )


def test_schema_is_draft_2020_12_with_versioned_id() -> None:
    schema = record_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA_VERSION in schema["$id"]
    assert set(schema["required"]) >= {"record_id", "record_type", "occurred_at", "owner_org", "source"}
    assert schema["properties"]["record_id"]["pattern"] == "^[0-9a-f]{64}$"


def _parts(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def test_record_id_derivation() -> None:
    rid = derive_record_id(KEY, "org-1", RecordType.INCIDENT, "J1")
    assert len(rid) == 64
    assert int(rid, 16) >= 0
    assert rid == rid.lower()
    assert rid == derive_record_id(KEY, "org-1", "incident", "J1")
    assert rid != derive_record_id(KEY, "org-2", RecordType.INCIDENT, "J1")
    assert rid != derive_record_id(KEY, "org-1", RecordType.RESIDENT, "J1")
    assert rid != derive_record_id(KEY, "org-1", RecordType.INCIDENT, "J2")
    # Length prefixes make the encoding unambiguous: moving bytes between parts changes the id.
    assert derive_record_id(KEY, "org-1a", RecordType.INCIDENT, "b") != derive_record_id(
        KEY, "org-1", RecordType.INCIDENT, "ab"
    )
    expected = hmac.new(
        KEY, b"ledger/record-id/v2\x00" + _parts(b"org-1", b"incident", b"J1"), hashlib.sha256
    ).hexdigest()
    assert rid == expected


def test_record_ids_are_keyed_so_a_guess_cannot_be_tested_without_the_key() -> None:
    """A resident's native id is an ID number: the unkeyed id gave it back from a region code and a birth year."""
    id_number = "330102199001011234"
    rid = derive_record_id(KEY, "org-1", RecordType.RESIDENT, id_number)
    unkeyed_guess = hashlib.sha256(b"ledger/record-id/v1\x00" + _parts(b"org-1", b"resident", id_number.encode()))
    assert rid != unkeyed_guess.hexdigest()
    assert rid != derive_legacy_record_id("org-1", RecordType.RESIDENT, id_number)
    assert rid != derive_record_id(bytes(32), "org-1", RecordType.RESIDENT, id_number)  # another owner's key
    for short in (b"", b"k" * 31):
        with pytest.raises(ValueError, match="record-id key"):
            derive_record_id(short, "org-1", RecordType.RESIDENT, id_number)


def test_legacy_record_id_is_the_v1_unkeyed_hash() -> None:
    # Records stored before keyed ids keep this id; the owner's gateway finds them by it.
    expected = hashlib.sha256(b"ledger/record-id/v1\x00" + _parts(b"org-1", b"incident", b"J1")).hexdigest()
    assert derive_legacy_record_id("org-1", RecordType.INCIDENT, "J1") == expected
    assert derive_legacy_record_id("org-1", "incident", "J1") == expected


def test_record_id_is_64_hex_or_left_for_the_owners_gateway() -> None:
    # The model cannot check an id without the owner's key: the owner's gateway does (tests/ledger_api/records).
    assert record(record_id=None).record_id is None
    with pytest.raises(ValidationError, match="record_id"):
        record(record_id="0" * 63)
    with pytest.raises(ValueError, match="has no record_id yet"):
        _ = record(record_id=None).assigned_record_id


def test_records_are_frozen_and_keyword_only() -> None:
    r = record()
    with pytest.raises(ValidationError):
        r.owner_org = "someone-else"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Location("10")  # type: ignore[misc]
    with pytest.raises(ValidationError):
        record(unexpected="field")


def test_occurred_at_is_aware_and_in_china_time() -> None:
    r = record(occurred_at=datetime(2025, 3, 14, 0, 5, tzinfo=UTC))
    assert r.to_json_dict()["occurred_at"] == "2025-03-14T08:05:00+08:00"
    with pytest.raises(ValidationError):
        record(occurred_at=datetime(2025, 3, 14, 8, 5))  # naive: refused


def test_fingerprint_ignores_file_and_row_but_not_content() -> None:
    base = record()
    moved = record(source={"system": "police.incidents", "native_id": "J1", "file": "b.csv", "row": 99})
    changed = record(attributes={"category": "诈骗"})
    assert base.content_fingerprint() == moved.content_fingerprint()
    assert base.content_fingerprint() != changed.content_fingerprint()
    assert base.record_id == changed.record_id  # a new version of the same record


def test_canonical_json_is_sorted_compact_utf8() -> None:
    data = canonical_json(record())
    text = data.decode("utf-8")
    assert "清河社区" in text
    assert "\\u" not in text
    assert ": " not in text
    assert ", " not in text
    parsed = json.loads(text)
    assert list(parsed) == sorted(parsed)
    assert data == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_id_number_pattern_enforced_in_subjects() -> None:
    with pytest.raises(ValidationError):
        Subject(role="x", id_number="51010719510124322")


# ---- codes and ID numbers: what the index column, the chain and the blind index can hold -------


@pytest.fixture(scope="module")
def schema_validator() -> Any:
    return jsonschema_rs.validator_for(record_json_schema())


def published_schema_accepts(validator: Any, **changes: Any) -> bool:
    data = record().to_json_dict()
    data.update(changes)
    return bool(validator.is_valid(data))


@pytest.mark.parametrize("code", ["330106001001", "清河社区", "c" * 32, "A-01 东区"])
def test_community_code_accepted(code: str, schema_validator: Any) -> None:
    assert record(community_code=code).community_code == code
    assert published_schema_accepts(schema_validator, community_code=code)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "at least 1 character"),
        ("c" * 33, "at most 32 characters"),  # the index column is VARCHAR(32)
        ("3301\x00", "control characters (U+0000 at position 5)"),  # PostgreSQL text cannot hold NUL
        ("33\n01", "control characters (U+000A at position 3)"),
        ("\t3301", "control characters (U+0009 at position 1)"),
        ("3301\x7f", "U+007F"),
        ("3301\x85", "U+0085"),  # C1 controls too
    ],
)
def test_community_code_rejected(code: str, message: str, schema_validator: Any) -> None:
    with pytest.raises(ValidationError, match="community_code") as caught:
        record(community_code=code)
    assert message in str(caught.value)
    assert not published_schema_accepts(schema_validator, community_code=code)


@pytest.mark.parametrize("org", ["org-police-1", "PS-XIHU-01", "o" * 32, "!#~"])
def test_owner_org_accepted(org: str, schema_validator: Any) -> None:
    assert record(owner_org=org).owner_org == org
    assert published_schema_accepts(schema_validator, owner_org=org)
    # What the schema accepts fits a bytes32 on chain (ledger_api.chain.encoding.code_to_bytes32).
    raw = org.encode("ascii")
    assert 1 <= len(raw) <= 32
    assert all(33 <= b < 127 for b in raw)


@pytest.mark.parametrize(
    ("org", "message"),
    [
        ("", "at least 1 character"),
        ("o" * 33, "at most 32 characters"),
        ("org police", "pattern"),  # a space
        ("org\x00", "pattern"),
        ("公安分局", "pattern"),  # not ASCII: would not fit a bytes32 as 32 characters
        ("ｏｒｇ-1", "pattern"),  # full-width
    ],
)
def test_owner_org_rejected(org: str, message: str, schema_validator: Any) -> None:
    with pytest.raises(ValidationError, match="owner_org") as caught:
        record(owner_org=org)
    assert message in str(caught.value)
    assert not published_schema_accepts(schema_validator, owner_org=org)


def test_codes_declare_their_limits_in_the_published_schema() -> None:
    properties = record_json_schema()["properties"]
    for name in ("community_code", "owner_org"):
        assert (properties[name]["minLength"], properties[name]["maxLength"]) == (1, 32)
        assert "pattern" in properties[name]
    assert properties["owner_org"]["pattern"] == "^[\\x21-\\x7E]+$"
    assert properties["community_code"]["pattern"] == "^[^\\x00-\\x1F\\x7F-\\x9F]+$"


@pytest.mark.parametrize(
    "digits",
    [
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢",  # Arabic-Indic: \d matches them, and int() reads them
        "११०१०५१९४९१२३१००२",  # Devanagari
        "１１０１０５１９４９１２３１００２",  # full-width: folded by normalise_id_number, not by the schema
    ],
)
def test_id_number_digits_are_ascii_only(digits: str, schema_validator: Any) -> None:
    assert Subject(role="x", id_number="11010519491231002X").id_number == "11010519491231002X"
    with pytest.raises(ValidationError, match="id_number"):
        Subject(role="x", id_number=digits + "X")
    subject = {**record().to_json_dict()["subjects"][0], "id_number": digits + "X"}
    assert not published_schema_accepts(schema_validator, subjects=[subject])


@pytest.mark.parametrize("number", ["١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "١١٠١٠٥٤٩١٢٣١٠٠٢"])
def test_normalise_id_number_refuses_other_scripts_digits(number: str) -> None:
    # NFKC leaves Arabic-Indic digits alone; the 18- and 15-digit patterns must not take them as digits.
    with pytest.raises(ValueError, match="17 digits 0-9"):
        normalise_id_number(number)
    assert normalise_id_number("110105491231002") == "11010519491231002X"


def test_blind_index() -> None:
    key = b"k" * 32
    normalised = normalise_id_number("510107510124322")  # 15 digits upgrade to the 18-digit form
    assert normalised == normalise_id_number("５１０１０７１９５１０１２４３２２４")
    index = blind_index(key, "id_number", normalised)
    assert index == blind_index(key, "id_number", normalised)
    assert index != blind_index(b"j" * 32, "id_number", normalised)
    assert index != blind_index(key, "address", normalised)  # domain-separated per kind
    message = b"ledger/blind-index/v1\x00" + b"".join(
        len(p).to_bytes(4, "big") + p for p in (b"id_number", normalised.encode())
    )
    assert index == hmac.new(key, message, hashlib.sha256).hexdigest()
    with pytest.raises(ValueError, match="key"):
        blind_index(b"", "address", "x")


def test_normalise_address() -> None:
    police = Location(building="10", unit="1", room="1502", text="清河社区10幢1单元1502室")
    registry = Location(building="10", unit="1", room="1502")
    assert normalise_address(police) == normalise_address(registry) == "10-1-1502"
    assert normalise_address("清河社区 10栋1单元１５０２室") == normalise_address("清河社区10幢1单元1502室")
    assert normalise_address("东湖社区（7号楼）") == normalise_address("东湖社区7幢")
