"""Request bodies accept exactly what their published JSON Schema describes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.canonical import normalise_address
from ledger_api.gateway.schemas import ADDRESS_PATTERN, BlindIndexRequest


def test_the_blind_index_request_publishes_exactly_one_of_two_non_null_strings() -> None:
    schema = BlindIndexRequest.model_json_schema()
    assert schema["oneOf"] == [{"required": ["id_number"]}, {"required": ["address"]}]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["id_number"] == {
        "type": "string", "minLength": 1, "title": "Id Number", "description": "An 18- or 15-digit GB 11643 ID number",
    }  # fmt: skip
    address = schema["properties"]["address"]
    assert (address["type"], address["minLength"], address["pattern"]) == ("string", 1, ADDRESS_PATTERN)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{}", "exactly one of id_number and address"),
        ('{"id_number": "11010519491231002X", "address": "10幢"}', "exactly one of id_number and address"),
        ('{"id_number": null, "address": "10幢"}', "not null"),
        ('{"address": null}', "not null"),
        ('{"address": ""}', "at least one letter, digit or ideograph"),
        ('{"address": " -，。（）"}', "at least one letter, digit or ideograph"),  # normalises to nothing
        ('{"address": "x", "extra": 1}', "Extra inputs are not permitted"),
    ],
)
def test_what_the_schema_refuses_the_model_refuses(body: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        BlindIndexRequest.model_validate_json(body)


@pytest.mark.parametrize("address", ["10幢1单元1502室", "Ｂ座", "x", "  ７  ", "豈"])
def test_an_address_the_pattern_accepts_keeps_something_after_normalisation(address: str) -> None:
    assert BlindIndexRequest(address=address).address == address
    assert normalise_address(address)
