"""Hypothesis: seal/open round trips and parse/encode identity over random plaintexts and headers."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_api.crypto.envelope import RecipientKey, open_record, parse_blob, seal_record, verify_commitment
from ledger_api.crypto.hpke import HpkeSuite
from tests.ledger_api.crypto.support import keys_for

_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda s: len(s.encode()) <= 255
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plaintext=st.binary(max_size=4096),
    record_id=_TEXT,
    owner_org=_TEXT,
    record_type=_TEXT,
    version=st.integers(min_value=0, max_value=2**64 - 1),
    suite=st.sampled_from(list(HpkeSuite)),
)
def test_seal_open_round_trip(
    plaintext: bytes, record_id: str, owner_org: str, record_type: str, version: int, suite: HpkeSuite
) -> None:
    keys = keys_for("hypothesis-org", suite)
    sealed = seal_record(
        plaintext=plaintext,
        record_id=record_id,
        owner_org=owner_org,
        record_type=record_type,
        version=version,
        recipients={owner_org: RecipientKey(org_id=owner_org, key_index=7, public_key=keys.public_key)},
    )
    assert parse_blob(sealed.blob).encode() == sealed.blob
    opened = open_record(
        sealed.blob,
        org_id=owner_org,
        key_index=7,
        private_key=keys.private_key,
        expected_hash=sealed.ciphertext_hash,
        expected_commitment=sealed.commitment,
    )
    assert opened.plaintext == plaintext
    assert (opened.record_id, opened.owner_org, opened.record_type, opened.version) == (
        record_id,
        owner_org,
        record_type,
        version,
    )
    verify_commitment(plaintext, opened.salt, sealed.commitment)
