"""Record envelopes: round trips, binding of the header, tamper detection, re-wrapping, rotation, shredding."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from ledger_api.crypto import hpke
from ledger_api.crypto.envelope import (
    BLOB_MAGIC,
    NONCE_SIZE,
    SALT_SIZE,
    ParsedBlob,
    RecipientKey,
    RecordHeader,
    WrappedKey,
    compute_commitment,
    open_record,
    parse_blob,
    seal_record,
    shred,
    verify_commitment,
    wrap_for_recipient,
    wrap_info,
)
from ledger_api.crypto.errors import (
    BlobHashMismatchError,
    CommitmentMismatchError,
    EnvelopeError,
    KeyUnwrapError,
    MalformedBlobError,
    NotARecipientError,
    RecordIntegrityError,
    RecordShreddedError,
)
from ledger_api.crypto.hpke import HpkeSuite
from tests.ledger_api.crypto.support import GRANTEE, OTHER, OWNER, keys_for, make_keys, seal

PLAINTEXT = '{"record_id":"rec-0001","record_type":"incident","text":"楼道堆放杂物"}'.encode()


def _open_as(blob: bytes, org: str, suite: HpkeSuite, **kwargs: object) -> bytes:
    keys = keys_for(org, suite)
    opened = open_record(blob, org_id=org, key_index=keys.key_index, private_key=keys.private_key, **kwargs)  # type: ignore[arg-type]
    return opened.plaintext


# -- round trips --------------------------------------------------------------------------------------


def test_round_trip(suite: HpkeSuite) -> None:
    sealed = seal(PLAINTEXT, suite=suite, readers=(GRANTEE,))
    for org in (OWNER, GRANTEE):
        keys = keys_for(org, suite)
        opened = open_record(
            sealed.blob,
            org_id=org,
            key_index=0,
            private_key=keys.private_key,
            expected_hash=sealed.ciphertext_hash,
            expected_commitment=sealed.commitment,
        )
        assert opened.plaintext == PLAINTEXT
        assert opened.header == RecordHeader(record_id="rec-0001", owner_org=OWNER, record_type="incident", version=1)
        assert (opened.record_id, opened.owner_org, opened.record_type, opened.version) == (
            "rec-0001",
            OWNER,
            "incident",
            1,
        )
        assert opened.commitment == sealed.commitment
        assert opened.ciphertext_hash == sealed.ciphertext_hash == hashlib.sha256(sealed.blob).hexdigest()
        assert len(opened.salt) == SALT_SIZE
        verify_commitment(opened.plaintext, opened.salt, sealed.commitment)
    assert sealed.recipients == tuple(sorted([(GRANTEE, 0), (OWNER, 0)]))


def test_empty_plaintext_round_trips(suite: HpkeSuite) -> None:
    sealed = seal(b"", suite=suite)
    assert _open_as(sealed.blob, OWNER, suite) == b""


def test_blob_holds_no_plaintext_and_is_compact() -> None:
    plaintext = b"A" * 1024
    sealed = seal(plaintext, suite=HpkeSuite.X25519, record_id="f" * 64)
    assert b"AAAAAAAA" not in sealed.blob
    # 35 framing + 48 salt/tag + 82 ids + 99 for the wrap (ids, index, length, 82-byte HPKE wrap).
    assert len(sealed.blob) - len(plaintext) == 264
    parsed = parse_blob(sealed.blob)
    assert parsed.encode() == sealed.blob
    assert sealed.blob.startswith(BLOB_MAGIC + b"\x01")


def test_repr_hides_secrets(suite: HpkeSuite) -> None:
    sealed = seal(b"secret plaintext", suite=suite)
    opened = open_record(sealed.blob, org_id=OWNER, key_index=0, private_key=keys_for(OWNER, suite).private_key)
    assert "secret plaintext" not in repr(opened)
    assert opened.salt.hex() not in repr(opened)
    assert "wrapped=" not in repr(parse_blob(sealed.blob))


def test_sealing_requires_the_owner_and_consistent_recipients() -> None:
    owner = keys_for(OWNER, HpkeSuite.X25519)
    grantee = keys_for(GRANTEE, HpkeSuite.X25519)
    base = {"plaintext": b"x", "record_id": "r", "owner_org": OWNER, "record_type": "incident", "version": 1}
    with pytest.raises(EnvelopeError, match="owner 'police-001' must be among the recipients"):
        seal_record(**base, recipients={GRANTEE: grantee.recipient})  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="differs from its org_id"):
        seal_record(**base, recipients={OWNER: owner.recipient, "someone": grantee.recipient})  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="version must be between"):
        seal_record(**{**base, "version": -1}, recipients={OWNER: owner.recipient})  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="record_id must not be empty"):
        seal_record(**{**base, "record_id": ""}, recipients={OWNER: owner.recipient})  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="at most 255"):
        seal_record(**{**base, "record_type": "t" * 256}, recipients={OWNER: owner.recipient})  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="public key 0 of 'x'"):
        RecipientKey(org_id="x", key_index=0, public_key=b"\x00\x20" + bytes(5))


# -- commitments --------------------------------------------------------------------------------------


def test_commitment_is_salted_and_verifiable(suite: HpkeSuite) -> None:
    first = seal(PLAINTEXT, suite=suite)
    second = seal(PLAINTEXT, suite=suite)
    assert first.commitment != second.commitment  # equal plaintexts do not give equal commitments
    assert first.ciphertext_hash != second.ciphertext_hash
    opened = open_record(first.blob, org_id=OWNER, key_index=0, private_key=keys_for(OWNER, suite).private_key)
    expected = hashlib.sha256(b"ledger/commitment/v1" + opened.salt + PLAINTEXT).hexdigest()
    assert first.commitment == expected == compute_commitment(PLAINTEXT, opened.salt)
    verify_commitment(PLAINTEXT, opened.salt, first.commitment.upper())
    verify_commitment(PLAINTEXT, opened.salt, "0x" + first.commitment)
    with pytest.raises(CommitmentMismatchError):
        verify_commitment(PLAINTEXT + b" ", opened.salt, first.commitment)
    with pytest.raises(CommitmentMismatchError):
        verify_commitment(PLAINTEXT, bytes(SALT_SIZE), first.commitment)
    with pytest.raises(CommitmentMismatchError):
        open_record(
            first.blob,
            org_id=OWNER,
            key_index=0,
            private_key=keys_for(OWNER, suite).private_key,
            expected_commitment=second.commitment,
        )


def test_salt_is_only_inside_the_ciphertext() -> None:
    sealed = seal(PLAINTEXT, suite=HpkeSuite.X25519)
    opened = open_record(
        sealed.blob, org_id=OWNER, key_index=0, private_key=keys_for(OWNER, HpkeSuite.X25519).private_key
    )
    assert opened.salt not in sealed.blob


# -- binding of the header (associated data) ------------------------------------------------------------


def _rewrapped(blob: bytes, suite: HpkeSuite, header: RecordHeader) -> bytes:
    """The blob with ``header`` replaced and the owner's wrap re-made for it, so only AES-GCM's AD can object."""
    parsed = parse_blob(blob)
    owner = keys_for(OWNER, suite)
    data_key = hpke.unwrap_key(
        parsed.wrapped_keys[0].wrapped, owner.private_key, info=wrap_info(parsed.header, parsed.nonce, OWNER, 0)
    )
    wrap = WrappedKey(
        org_id=OWNER,
        key_index=0,
        wrapped=hpke.wrap_key(data_key, owner.public_key, info=wrap_info(header, parsed.nonce, OWNER, 0)),
    )
    return dataclasses.replace(parsed, header=header, wrapped_keys=(wrap,)).encode()


@pytest.mark.parametrize(
    "change",
    [
        {"record_id": "rec-0002"},
        {"owner_org": OTHER},
        {"record_type": "key_person"},
        {"version": 2},
        {"owner_org": "incident", "record_type": OWNER},  # swapped fields
    ],
    ids=["record_id", "owner_org", "record_type", "version", "swapped"],
)
def test_header_is_bound_by_the_associated_data(suite: HpkeSuite, change: dict[str, object]) -> None:
    sealed = seal(PLAINTEXT, suite=suite)
    header = dataclasses.replace(sealed.header, **change)  # type: ignore[arg-type]
    # With the original wrap, the HPKE info (which covers the header) already refuses to open...
    moved = dataclasses.replace(parse_blob(sealed.blob), header=header).encode()
    with pytest.raises(KeyUnwrapError, match="does not open"):
        _open_as(moved, OWNER, suite)
    # ...and with a wrap made for the new header, AES-GCM's associated data refuses (SP 800-38D §7.2).
    with pytest.raises(RecordIntegrityError, match="failed authentication"):
        _open_as(_rewrapped(sealed.blob, suite, header), OWNER, suite)
    # Control: re-wrapping for the unchanged header still opens, so the failures above are the AD's doing.
    assert _open_as(_rewrapped(sealed.blob, suite, sealed.header), OWNER, suite) == PLAINTEXT


# -- tampering ----------------------------------------------------------------------------------------


def _regions(blob: bytes) -> dict[str, range]:
    parsed = parse_blob(blob)
    header_end = 5 + len(parsed.header.encode())
    nonce_end = header_end + NONCE_SIZE
    ct_end = nonce_end + 4 + len(parsed.ciphertext)
    return {
        "magic+format+header": range(0, header_end),
        "nonce": range(header_end, nonce_end),
        "ciphertext": range(nonce_end, ct_end),
        "wrapped keys": range(ct_end, len(blob)),
    }


def test_every_flipped_bit_is_detected(suite: HpkeSuite) -> None:
    sealed = seal(PLAINTEXT, suite=suite)
    regions = _regions(sealed.blob)
    assert sum(len(r) for r in regions.values()) == len(sealed.blob)
    owner = keys_for(OWNER, suite)
    for region, positions in regions.items():
        for position in positions:
            for bit in (0x01, 0x80):
                tampered = bytearray(sealed.blob)
                tampered[position] ^= bit
                with pytest.raises(EnvelopeError) as caught:
                    open_record(bytes(tampered), org_id=OWNER, key_index=0, private_key=owner.private_key)
                assert str(caught.value), f"{region} byte {position}"
                with pytest.raises(BlobHashMismatchError):
                    open_record(
                        bytes(tampered),
                        org_id=OWNER,
                        key_index=0,
                        private_key=owner.private_key,
                        expected_hash=sealed.ciphertext_hash,
                    )


def test_truncation_and_extension_are_detected() -> None:
    sealed = seal(PLAINTEXT, suite=HpkeSuite.X25519)
    owner = keys_for(OWNER, HpkeSuite.X25519)
    for size in range(len(sealed.blob)):
        with pytest.raises(MalformedBlobError):
            open_record(sealed.blob[:size], org_id=OWNER, key_index=0, private_key=owner.private_key)
    with pytest.raises(MalformedBlobError, match="trailing"):
        open_record(sealed.blob + b"\x00", org_id=OWNER, key_index=0, private_key=owner.private_key)


def test_another_readers_wrap_is_only_covered_by_the_anchor(suite: HpkeSuite) -> None:
    """Documented limit: a reader cannot see damage to someone else's wrap unless it checks the anchor."""
    sealed = seal(PLAINTEXT, suite=suite, readers=(GRANTEE,))
    parsed = parse_blob(sealed.blob)
    grantee_index = parsed.recipients.index((GRANTEE, 0))
    damaged_wrap = bytearray(parsed.wrapped_keys[grantee_index].wrapped)
    damaged_wrap[-1] ^= 1
    wraps = list(parsed.wrapped_keys)
    wraps[grantee_index] = dataclasses.replace(wraps[grantee_index], wrapped=bytes(damaged_wrap))
    damaged = dataclasses.replace(parsed, wrapped_keys=tuple(wraps)).encode()
    assert _open_as(damaged, OWNER, suite) == PLAINTEXT
    with pytest.raises(KeyUnwrapError):
        _open_as(damaged, GRANTEE, suite)
    with pytest.raises(BlobHashMismatchError, match="altered or swapped"):
        _open_as(damaged, OWNER, suite, expected_hash=sealed.ciphertext_hash)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + b"\x02" + b[5:], "unsupported format version 2"),
    ],
    ids=["magic", "format"],
)
def test_framing_errors_are_named(mutate: object, message: str) -> None:
    sealed = seal(PLAINTEXT, suite=HpkeSuite.X25519)
    with pytest.raises(MalformedBlobError, match=message):
        parse_blob(mutate(sealed.blob))  # type: ignore[operator]


def test_parser_requires_the_canonical_wrap_order() -> None:
    sealed = seal(PLAINTEXT, suite=HpkeSuite.X25519, readers=(GRANTEE, OTHER))
    parsed = parse_blob(sealed.blob)
    with pytest.raises(MalformedBlobError, match="not sorted"):
        dataclasses.replace(parsed, wrapped_keys=tuple(reversed(parsed.wrapped_keys)))
    with pytest.raises(MalformedBlobError, match="duplicate"):
        dataclasses.replace(parsed, wrapped_keys=(parsed.wrapped_keys[0], parsed.wrapped_keys[0]))


# -- wrong keys and moved wraps -----------------------------------------------------------------------


def test_wrong_recipient_key_fails(suite: HpkeSuite) -> None:
    sealed = seal(PLAINTEXT, suite=suite)
    impostor = make_keys(OWNER, suite)
    with pytest.raises(KeyUnwrapError, match="does not open"):
        open_record(sealed.blob, org_id=OWNER, key_index=0, private_key=impostor.private_key)
    with pytest.raises(NotARecipientError, match="no wrapped key for 'committee-007' key index 0"):
        _open_as(sealed.blob, GRANTEE, suite)
    with pytest.raises(NotARecipientError, match=r"holds key indexes \[0\]"):
        open_record(sealed.blob, org_id=OWNER, key_index=3, private_key=keys_for(OWNER, suite).private_key)


def test_suite_mismatch_between_wrap_and_key_fails() -> None:
    sealed = seal(PLAINTEXT, suite=HpkeSuite.X25519)
    hybrid = keys_for(OWNER, HpkeSuite.MLKEM768_X25519)
    with pytest.raises(KeyUnwrapError, match="x25519 key, but a mlkem768-x25519 private key"):
        open_record(sealed.blob, org_id=OWNER, key_index=0, private_key=hybrid.private_key)


def test_wrap_moved_from_another_record_fails(suite: HpkeSuite) -> None:
    source = seal(b"record A", suite=suite, record_id="rec-A")
    target = seal(b"record B", suite=suite, record_id="rec-B")
    foreign = parse_blob(source.blob).wrapped_keys
    moved = dataclasses.replace(parse_blob(target.blob), wrapped_keys=foreign).encode()
    with pytest.raises(KeyUnwrapError, match="moved from another record"):
        _open_as(moved, OWNER, suite)


def test_wrap_moved_between_two_sealings_of_the_same_version_fails(suite: HpkeSuite) -> None:
    # Same record id, owner, type and version (e.g. a retried push): the nonce in the HPKE info still differs.
    first = seal(b"same version, first sealing", suite=suite)
    second = seal(b"same version, second sealing", suite=suite)
    moved = dataclasses.replace(parse_blob(second.blob), wrapped_keys=parse_blob(first.blob).wrapped_keys).encode()
    with pytest.raises(KeyUnwrapError):
        _open_as(moved, OWNER, suite)


def test_wrap_relabelled_to_another_slot_fails(suite: HpkeSuite) -> None:
    sealed = seal(PLAINTEXT, suite=suite)
    parsed = parse_blob(sealed.blob)
    owner = keys_for(OWNER, suite)
    for org_id, key_index in ((OWNER, 1), (OTHER, 0)):
        relabelled = dataclasses.replace(parsed.wrapped_keys[0], org_id=org_id, key_index=key_index)
        blob = dataclasses.replace(parsed, wrapped_keys=(relabelled,)).encode()
        with pytest.raises(KeyUnwrapError):
            open_record(blob, org_id=org_id, key_index=key_index, private_key=owner.private_key)


# -- grantees, rotation, shredding -------------------------------------------------------------------------


def test_detached_wrap_keeps_the_anchored_blob(suite: HpkeSuite) -> None:
    sealed = seal(PLAINTEXT, suite=suite)
    owner = keys_for(OWNER, suite)
    grantee = keys_for(GRANTEE, suite)
    wrap = wrap_for_recipient(
        sealed.blob,
        opener_org=OWNER,
        opener_key_index=0,
        opener_private_key=owner.private_key,
        recipient=grantee.recipient,
    )
    stored = wrap.encode()
    restored = WrappedKey.decode(stored)
    assert restored == wrap
    opened = open_record(
        sealed.blob,
        org_id=GRANTEE,
        key_index=0,
        private_key=grantee.private_key,
        extra_wraps=[restored],
        expected_hash=sealed.ciphertext_hash,
        expected_commitment=sealed.commitment,
    )
    assert opened.plaintext == PLAINTEXT
    # The detached wrap is bound to this blob: it does not open another record of the same owner.
    other = seal(b"another record", suite=suite, record_id="rec-9999")
    with pytest.raises(KeyUnwrapError):
        open_record(other.blob, org_id=GRANTEE, key_index=0, private_key=grantee.private_key, extra_wraps=[restored])
    with pytest.raises(MalformedBlobError, match="bad magic"):
        WrappedKey.decode(b"XXXX" + stored[4:])


def test_rewrap_needs_a_working_opener_key(suite: HpkeSuite) -> None:
    sealed = seal(PLAINTEXT, suite=suite)
    impostor = make_keys(OWNER, suite)
    with pytest.raises(KeyUnwrapError):
        wrap_for_recipient(
            sealed.blob,
            opener_org=OWNER,
            opener_key_index=0,
            opener_private_key=impostor.private_key,
            recipient=keys_for(GRANTEE, suite).recipient,
        )


def test_records_sealed_under_an_old_key_open_after_rotation(suite: HpkeSuite) -> None:
    key0 = keys_for(OWNER, suite, 0)
    key1 = keys_for(OWNER, suite, 1)
    old = seal_record(
        plaintext=b"sealed under key 0",
        record_id="rec-old",
        owner_org=OWNER,
        record_type="incident",
        version=1,
        recipients={OWNER: key0.recipient},
    )
    new = seal_record(
        plaintext=b"sealed under key 1",
        record_id="rec-new",
        owner_org=OWNER,
        record_type="incident",
        version=1,
        recipients={OWNER: key1.recipient},
    )
    assert (
        open_record(old.blob, org_id=OWNER, key_index=0, private_key=key0.private_key).plaintext
        == b"sealed under key 0"
    )
    assert (
        open_record(new.blob, org_id=OWNER, key_index=1, private_key=key1.private_key).plaintext
        == b"sealed under key 1"
    )
    with pytest.raises(NotARecipientError, match=r"holds key indexes \[0\]"):
        open_record(old.blob, org_id=OWNER, key_index=1, private_key=key1.private_key)
    # Optional re-wrap of an old record for the new key (detached: the anchored blob stays as it is).
    rewrapped = wrap_for_recipient(
        old.blob, opener_org=OWNER, opener_key_index=0, opener_private_key=key0.private_key, recipient=key1.recipient
    )
    assert (
        open_record(
            old.blob, org_id=OWNER, key_index=1, private_key=key1.private_key, extra_wraps=[rewrapped]
        ).plaintext
        == b"sealed under key 0"
    )


def test_shredded_records_never_open(suite: HpkeSuite) -> None:
    sealed = seal(PLAINTEXT, suite=suite, readers=(GRANTEE,))
    shredded = shred(sealed.blob)
    parsed = parse_blob(shredded)
    assert parsed.shredded
    assert parsed.wrapped_keys == ()
    assert parsed.ciphertext == parse_blob(sealed.blob).ciphertext
    for org in (OWNER, GRANTEE):
        with pytest.raises(RecordShreddedError, match="crypto-shredded"):
            _open_as(shredded, org, suite)
    with pytest.raises(RecordShreddedError):
        wrap_for_recipient(
            shredded,
            opener_org=OWNER,
            opener_key_index=0,
            opener_private_key=keys_for(OWNER, suite).private_key,
            recipient=keys_for(OTHER, suite).recipient,
        )
    assert shred(shredded) == shredded
    # No wrapped key survives in the bytes.
    for wrap in parse_blob(sealed.blob).wrapped_keys:
        assert wrap.wrapped not in shredded


def test_shredded_flag_cannot_carry_wraps() -> None:
    sealed = seal(PLAINTEXT, suite=HpkeSuite.X25519)
    parsed = parse_blob(sealed.blob)
    with pytest.raises(MalformedBlobError, match="shredded blob must hold no wrapped keys"):
        ParsedBlob(
            format_version=1,
            header=parsed.header,
            nonce=parsed.nonce,
            ciphertext=parsed.ciphertext,
            wrapped_keys=parsed.wrapped_keys,
            shredded=True,
        )
