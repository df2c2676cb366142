"""The read endpoint's pre-serialised body is exactly the published `RecordRead` model."""

from __future__ import annotations

import json

import pytest

from ledger_api.chain.encoding import Purpose
from ledger_api.gateway.routers.reads import (
    AccessReceipt,
    AnchorInfo,
    CommitmentOpeningModel,
    RecordRead,
    record_read_json,
)
from ledger_api.records.commitment import COMMITMENT_SCHEME, CommitmentOpening
from ledger_api.records.reading import ReadResult

MASKED = CommitmentOpening(
    scheme=COMMITMENT_SCHEME, salt="aa" * 32, revealed={}, masked={"subjects[0].id_number": "bb" * 32}
)
CLEAR = CommitmentOpening(
    scheme=COMMITMENT_SCHEME, salt="aa" * 32, revealed={"subjects[0].id_number": "cc" * 32}, masked={}
)


def result(**overrides: object) -> ReadResult:
    fields: dict[str, object] = {
        "record": {"subjects": [{"name": "张三", "id_number": "3301**********0011"}], "n": 1.5, "ok": True},
        "record_id": "ab" * 32, "version": 2, "owner_org": "PS-XIHU-01", "record_type": "incident",
        "masked_fields": ("subjects[0].id_number",), "purpose": Purpose.ELDERLY_CARE, "grant_id": 7,
        "emergency": False, "request_id": "f" * 32, "entry_index": 41, "checked_block": 812,
        "ciphertext_hash": "cd" * 32, "commitment": "ef" * 32, "opening": MASKED, "batch_root": "01" * 32,
        "leaf_index": 3, "block_number": 799, "transaction": "0x" + "23" * 32,
    }  # fmt: skip
    fields.update(overrides)
    return ReadResult(**fields)  # type: ignore[arg-type]


def model_of(read: ReadResult) -> RecordRead:
    return RecordRead(
        record_id=read.record_id, version=read.version, owner_org=read.owner_org, record_type=read.record_type,
        record=read.record, masked_fields=list(read.masked_fields),
        access=AccessReceipt(entry_index=read.entry_index, request_id=read.request_id, grant_id=read.grant_id,
                             purpose=read.purpose.label, emergency=read.emergency, checked_block=read.checked_block),
        anchor=AnchorInfo(ciphertext_hash=read.ciphertext_hash, commitment=read.commitment,
                          opening=CommitmentOpeningModel(**read.opening.to_json()),
                          batch_root=read.batch_root, leaf_index=read.leaf_index, block_number=read.block_number,
                          transaction=read.transaction),
    )  # fmt: skip


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"opening": CLEAR, "masked_fields": (), "batch_root": None, "leaf_index": None, "block_number": None,
         "transaction": None},
        {"emergency": True, "grant_id": 0, "purpose": Purpose.EMERGENCY_RESPONSE},
    ],
)  # fmt: skip
def test_the_body_validates_as_record_read_and_equals_what_the_model_would_send(overrides: dict[str, object]) -> None:
    read = result(**overrides)
    body = record_read_json(read)
    assert RecordRead.model_validate_json(body) == model_of(read)
    assert json.loads(body) == json.loads(model_of(read).model_dump_json())
    assert "张三".encode() in body  # UTF-8 as the model's own serialisation, not \u escapes
