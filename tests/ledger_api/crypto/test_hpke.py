"""HPKE wrapping: round trips, encodings, and the KEM ids checked against an independent RFC 9180 key schedule.

The interop tests re-derive RFC 9180 §5.1 (mode Base) by hand from the recipient's private key and decrypt
what ``cryptography`` produced. They pass only if the library uses the documented KEM id (0x0020, 0x647A),
KDF (HKDF-SHA256) and AEAD (AES-256-GCM, id 0x0002), and the X-Wing combiner for the hybrid.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ledger_api.crypto import hpke
from ledger_api.crypto.errors import CryptoError, HpkeError
from ledger_api.crypto.hpke import (
    KEM_ID_MLKEM768_X25519,
    KEM_ID_X25519,
    HpkeSuite,
    decode_private_key,
    decode_public_key,
    encode_private_key,
    encode_public_key,
    generate_keypair,
    public_key_from_private,
    unwrap_key,
    wrap_key,
    wrapped_key_size,
)

DATA_KEY = bytes(range(32))
INFO = b"ledger/wrap/v1|test-record|v1|org|0"

# draft-connolly-cfrg-xwing-kem-08 Appendix C, vector 1: the 32-byte seed and SHA-256 of its 1216-byte pk.
XWING_SEED = bytes.fromhex("7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26")
XWING_PK_SHA256 = "2e816deebcd76c5c80d0cd2d174478871658e8e2ff42bc9d4a6e486372e856bb"


# -- an independent RFC 9180 base-mode opener (test-only) ---------------------------------------------


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()  # RFC 5869 §2.2


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)  # RFC 9180 §4


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


def _open_base(kem_id: int, shared_secret: bytes, info: bytes, ciphertext: bytes) -> bytes:
    # RFC 9180 §5.1 KeySchedule (mode_base, no PSK) then §5.2 Open with seq = 0.
    suite_id = b"HPKE" + kem_id.to_bytes(2, "big") + (0x0001).to_bytes(2, "big") + (0x0002).to_bytes(2, "big")
    context = (
        b"\x00"
        + _labeled_extract(suite_id, b"", b"psk_id_hash", b"")
        + _labeled_extract(suite_id, b"", b"info_hash", info)
    )
    secret = _labeled_extract(suite_id, shared_secret, b"secret", b"")
    key = _labeled_expand(suite_id, secret, b"key", context, 32)
    base_nonce = _labeled_expand(suite_id, secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(base_nonce, ciphertext, b"")


def _xwing_components(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    expanded = hashlib.shake_256(seed).digest(96)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
    )


def test_x25519_wrap_follows_rfc9180_with_kem_id_0x0020() -> None:
    private_key, public_key = generate_keypair(HpkeSuite.X25519)
    wrapped = wrap_key(DATA_KEY, public_key, info=INFO)
    assert wrapped[:2] == b"\x00\x20"
    enc, ciphertext = wrapped[2:34], wrapped[34:]
    sk = x25519.X25519PrivateKey.from_private_bytes(private_key[2:])
    # RFC 9180 §4.1 DHKEM Decap: ExtractAndExpand(DH(skR, pkE), enc || pkRm) under suite_id "KEM" || 0x0020.
    kem_suite = b"KEM" + KEM_ID_X25519.to_bytes(2, "big")
    dh = sk.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem_suite, prk, b"shared_secret", enc + sk.public_key().public_bytes_raw(), 32)
    assert _open_base(KEM_ID_X25519, shared, INFO, ciphertext) == DATA_KEY


def test_hybrid_wrap_is_xwing_with_kem_id_0x647a() -> None:
    private_key, public_key = generate_keypair(HpkeSuite.MLKEM768_X25519)
    wrapped = wrap_key(DATA_KEY, public_key, info=INFO)
    assert wrapped[:2] == b"\x64\x7a"
    enc, ciphertext = wrapped[2:1122], wrapped[1122:]
    mlkem_key, x_key = _xwing_components(private_key[2:])
    # draft-connolly-cfrg-xwing-kem: ss = SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel).
    ss_m = mlkem_key.decapsulate(enc[:1088])
    ct_x = enc[1088:]
    ss_x = x_key.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    label = b"\\.//^\\"
    shared = hashlib.sha3_256(ss_m + ss_x + ct_x + x_key.public_key().public_bytes_raw() + label).digest()
    assert _open_base(KEM_ID_MLKEM768_X25519, shared, INFO, ciphertext) == DATA_KEY


def test_hybrid_key_derivation_matches_the_xwing_test_vector() -> None:
    private_key = encode_private_key(HpkeSuite.MLKEM768_X25519, XWING_SEED)
    public_key = public_key_from_private(private_key)
    assert public_key[:2] == KEM_ID_MLKEM768_X25519.to_bytes(2, "big")
    assert hashlib.sha256(public_key[2:]).hexdigest() == XWING_PK_SHA256


# -- round trips and encodings ------------------------------------------------------------------------


def test_round_trip(suite: HpkeSuite) -> None:
    private_key, public_key = generate_keypair(suite)
    wrapped = wrap_key(DATA_KEY, public_key, info=INFO)
    assert len(wrapped) == wrapped_key_size(suite)
    assert unwrap_key(wrapped, private_key, info=INFO) == DATA_KEY


def test_wrapping_is_randomised(suite: HpkeSuite) -> None:
    _, public_key = generate_keypair(suite)
    assert wrap_key(DATA_KEY, public_key, info=INFO) != wrap_key(DATA_KEY, public_key, info=INFO)


def test_key_encodings(suite: HpkeSuite) -> None:
    private_key, public_key = generate_keypair(suite)
    assert int.from_bytes(public_key[:2], "big") == suite.kem_id
    assert int.from_bytes(private_key[:2], "big") == suite.kem_id
    assert len(public_key) == 2 + suite.public_key_size
    assert decode_public_key(public_key) == (suite, public_key[2:])
    assert encode_public_key(suite, public_key[2:]) == public_key
    assert decode_private_key(private_key) == (suite, private_key[2:])
    assert public_key_from_private(private_key) == public_key
    assert HpkeSuite.from_kem_id(suite.kem_id) is suite


def test_suite_table() -> None:
    assert HpkeSuite.X25519.kem_id == 0x0020
    assert HpkeSuite.MLKEM768_X25519.kem_id == 0x647A
    assert (HpkeSuite.X25519.public_key_size, HpkeSuite.X25519.enc_size) == (32, 32)
    assert (HpkeSuite.MLKEM768_X25519.public_key_size, HpkeSuite.MLKEM768_X25519.enc_size) == (1216, 1120)
    assert wrapped_key_size(HpkeSuite.X25519) == 82


def test_wrong_info_fails(suite: HpkeSuite) -> None:
    private_key, public_key = generate_keypair(suite)
    wrapped = wrap_key(DATA_KEY, public_key, info=INFO)
    with pytest.raises(HpkeError, match="does not open"):
        unwrap_key(wrapped, private_key, info=INFO + b"x")


def test_wrong_private_key_fails(suite: HpkeSuite) -> None:
    _, public_key = generate_keypair(suite)
    other_private, _ = generate_keypair(suite)
    wrapped = wrap_key(DATA_KEY, public_key, info=INFO)
    with pytest.raises(HpkeError, match="does not open"):
        unwrap_key(wrapped, other_private, info=INFO)


def test_suite_mismatch_is_named() -> None:
    _, public_key = generate_keypair(HpkeSuite.X25519)
    hybrid_private, _ = generate_keypair(HpkeSuite.MLKEM768_X25519)
    wrapped = wrap_key(DATA_KEY, public_key, info=INFO)
    with pytest.raises(HpkeError, match="wrapped for a x25519 key, but a mlkem768-x25519 private key"):
        unwrap_key(wrapped, hybrid_private, info=INFO)


def test_every_flipped_bit_of_a_wrap_fails(suite: HpkeSuite) -> None:
    private_key, public_key = generate_keypair(suite)
    wrapped = wrap_key(DATA_KEY, public_key, info=INFO)
    for position in range(len(wrapped)):
        for bit in (0x01, 0x80):
            tampered = bytearray(wrapped)
            tampered[position] ^= bit
            with pytest.raises(HpkeError):
                unwrap_key(bytes(tampered), private_key, info=INFO)


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (b"", "too short"),
        (b"\x00", "too short"),
        (b"\x00\x10" + bytes(65), "unsupported HPKE KEM id 0x0010"),
        (b"\x00\x20" + bytes(31), "must be 32 bytes"),
        (b"\x64\x7a" + bytes(32), "must be 1216 bytes"),
    ],
)
def test_bad_public_keys(encoded: bytes, message: str) -> None:
    with pytest.raises(HpkeError, match=message):
        decode_public_key(encoded)


def test_bad_inputs_are_refused() -> None:
    private_key, public_key = generate_keypair()
    with pytest.raises(HpkeError, match="32 bytes"):
        wrap_key(b"short", public_key, info=INFO)
    with pytest.raises(HpkeError, match="must not be empty"):
        wrap_key(DATA_KEY, public_key, info=b"")
    with pytest.raises(HpkeError, match="82 bytes"):
        unwrap_key(wrap_key(DATA_KEY, public_key, info=INFO)[:-1], private_key, info=INFO)
    with pytest.raises(HpkeError, match="private key must be 32 bytes"):
        decode_private_key(b"\x00\x20" + bytes(33))


def test_errors_share_the_ledger_root() -> None:
    from ledger_api.errors import LedgerError

    assert issubclass(HpkeError, CryptoError)
    assert issubclass(CryptoError, LedgerError)
    assert hpke.DATA_KEY_SIZE == 32
