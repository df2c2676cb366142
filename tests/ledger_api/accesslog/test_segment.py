"""Sealed segments: round trip, tamper detection, who can open them, and the auditor's rebuild."""

from __future__ import annotations

import hashlib
import random

import pytest

from ledger_api.accesslog import (
    SEGMENT_MAGIC,
    ChainTreeHead,
    MalformedSegment,
    NotASegmentRecipient,
    OpenedSegment,
    SegmentError,
    SegmentIntegrityError,
    is_segment,
    open_segment,
    parse_segment,
    seal_segment,
    verify_log,
)
from ledger_api.crypto import RecipientKey, seal_record
from ledger_api.merkle import MerkleTree
from tests.ledger_api.accesslog.support import make_entry

AUDITOR = "AU-STREET-01"
GATEWAY = "gateway"

Keys = tuple[bytes, bytes]


def _leaves(start: int, stop: int) -> list[bytes]:
    return [make_entry(n).leaf_data() for n in range(start, stop)]


def _tree(stop: int) -> MerkleTree:
    return MerkleTree.from_leaf_hashes(make_entry(n).leaf_hash() for n in range(stop))


def _seal(start: int, stop: int, auditor: Keys, gateway: Keys) -> bytes:
    return seal_segment(
        from_index=start,
        to_index=stop,
        root=_tree(stop).root(),
        leaf_data=_leaves(start, stop),
        recipients={AUDITOR: (0, auditor[1]), GATEWAY: (3, gateway[1])},
    )


def test_a_segment_opens_for_the_auditor_and_the_gateway(auditor_keys: Keys, gateway_keys: Keys) -> None:
    blob = _seal(10, 25, auditor_keys, gateway_keys)
    assert blob[:4] == SEGMENT_MAGIC == b"LDAS"
    assert is_segment(blob)
    header = parse_segment(blob)
    assert (header.from_index, header.to_index, header.count) == (10, 25, 15)
    assert header.root == _tree(25).root()
    assert header.recipients == ((AUDITOR, 0), (GATEWAY, 3))
    for org_id, key_index, private in [(AUDITOR, 0, auditor_keys[0]), (GATEWAY, 3, gateway_keys[0])]:
        opened = open_segment(blob, org_id=org_id, key_index=key_index, private_key=private)
        assert opened.entries == tuple(make_entry(n) for n in range(10, 25))
        assert list(opened.leaf_data) == _leaves(10, 25)
        assert (opened.from_index, opened.to_index, opened.root) == (10, 25, header.root)
    # Shared storage sees only ciphertext: no entry field is readable in the blob.
    assert make_entry(10).request_id.encode() not in blob
    assert make_entry(10).accessor_org.encode() not in blob


def test_no_one_else_opens_a_segment(auditor_keys: Keys, gateway_keys: Keys, outsider_keys: Keys) -> None:
    blob = _seal(0, 5, auditor_keys, gateway_keys)
    with pytest.raises(NotASegmentRecipient, match="PS-XIHU-01"):
        open_segment(blob, org_id="PS-XIHU-01", key_index=0, private_key=outsider_keys[0])
    with pytest.raises(NotASegmentRecipient, match="key indexes \\[0\\]"):
        open_segment(blob, org_id=AUDITOR, key_index=1, private_key=auditor_keys[0])
    with pytest.raises(SegmentIntegrityError, match="does not open"):
        open_segment(blob, org_id=AUDITOR, key_index=0, private_key=outsider_keys[0])  # a wrong key for the name


def test_any_altered_byte_is_detected(auditor_keys: Keys, gateway_keys: Keys) -> None:
    blob = _seal(3, 9, auditor_keys, gateway_keys)
    key = hashlib.sha256(blob).hexdigest()
    header_end = 4 + 1 + 8 + 8 + 32
    nonce_end = header_end + 12
    ciphertext_start = nonce_end + 4
    ciphertext_end = ciphertext_start + int.from_bytes(blob[nonce_end:ciphertext_start], "big")
    gateway_wrap = blob.index(GATEWAY.encode())  # wraps are sorted: the auditor's comes first
    rng = random.Random(5)
    positions = [5, 13, 20, header_end + 1, nonce_end + 6, ciphertext_start + 7, ciphertext_end + 9, len(blob) - 1]
    positions += [rng.randrange(len(blob)) for _ in range(40)]
    for position in positions:
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        # Against its storage key (SHA-256), any change at all.
        with pytest.raises(SegmentError):
            open_segment(bytes(tampered), org_id=AUDITOR, key_index=0, private_key=auditor_keys[0], expected_key=key)
        if position < gateway_wrap - 1:
            # Header, nonce, entries and the auditor's own wrap are authenticated by themselves.
            with pytest.raises(SegmentError):
                open_segment(bytes(tampered), org_id=AUDITOR, key_index=0, private_key=auditor_keys[0])


def test_the_parser_is_strict(auditor_keys: Keys, gateway_keys: Keys) -> None:
    blob = _seal(0, 4, auditor_keys, gateway_keys)
    for bad, reason in [
        (blob[:-1], "truncated"),
        (blob + b"\x00", "trailing"),
        (b"LDGR" + blob[4:], "bad magic"),
        (blob[:4] + b"\x02" + blob[5:], "version"),
    ]:
        with pytest.raises(MalformedSegment, match=reason):
            parse_segment(bad)
    record = seal_record(
        plaintext=b"{}",
        record_id="ab" * 32,
        owner_org="PS-XIHU-01",
        record_type="incident",
        version=1,
        recipients={"PS-XIHU-01": RecipientKey(org_id="PS-XIHU-01", key_index=0, public_key=auditor_keys[1])},
    )
    assert not is_segment(record.blob)
    assert not is_segment(b'{"format":"ledger-batch-manifest/v1"}')


def test_sealing_refuses_what_could_not_be_checked(auditor_keys: Keys) -> None:
    recipients = {AUDITOR: (0, auditor_keys[1])}
    root = _tree(3).root()
    with pytest.raises(SegmentError, match="entries given"):
        seal_segment(from_index=0, to_index=3, root=root, leaf_data=_leaves(0, 2), recipients=recipients)
    with pytest.raises(SegmentError, match="from_index < to_index"):
        seal_segment(from_index=3, to_index=3, root=root, leaf_data=[], recipients=recipients)
    with pytest.raises(SegmentError, match="recipient"):
        seal_segment(from_index=0, to_index=3, root=root, leaf_data=_leaves(0, 3), recipients={})
    with pytest.raises(SegmentError, match="public key"):
        seal_segment(from_index=0, to_index=3, root=root, leaf_data=_leaves(0, 3), recipients={AUDITOR: (0, b"x")})


# --- the auditor's rebuild ---------------------------------------------------------------------------


def _heads(sizes: list[int]) -> list[ChainTreeHead]:
    tree = _tree(sizes[-1])
    return [ChainTreeHead(index=i, size=s, root=tree.root(s), block_number=i, timestamp=i) for i, s in enumerate(sizes)]


def _open(blob: bytes, auditor: Keys) -> OpenedSegment:
    return open_segment(blob, org_id=AUDITOR, key_index=0, private_key=auditor[0])


def test_segments_rebuild_the_anchored_log(auditor_keys: Keys, gateway_keys: Keys) -> None:
    sizes = [3, 4, 20, 33]
    bounds = list(zip([0, *sizes[:-1]], sizes, strict=True))
    segments = [_open(_seal(a, b, auditor_keys, gateway_keys), auditor_keys) for a, b in bounds]
    duplicate = _open(_seal(4, 20, auditor_keys, gateway_keys), auditor_keys)  # written twice around a crash
    pending = _open(_seal(33, 40, auditor_keys, gateway_keys), auditor_keys)  # its head is not anchored yet
    audit = verify_log(_heads(sizes), [pending, *reversed(segments), duplicate])
    assert audit.ok, audit.problems
    assert (audit.size, audit.heads_verified) == (33, 4)
    assert audit.entries == tuple(make_entry(n) for n in range(33))
    assert set(audit.extra_segments) == {duplicate.key, pending.key}


def test_a_missing_or_forged_segment_is_a_problem(auditor_keys: Keys, gateway_keys: Keys) -> None:
    sizes = [5, 12]
    good = [_open(_seal(0, 5, auditor_keys, gateway_keys), auditor_keys)]
    audit = verify_log(_heads(sizes), good)
    assert not audit.ok
    assert audit.size == 5
    assert "no segment holds entries from 5 on, needed for head #1 of 12 entries" in audit.problems[0]

    # Anyone can seal for the auditor's public key: a segment claiming head #1 with other entries.
    forged_leaves = [*_leaves(5, 11), make_entry(999).leaf_data()]
    forged = _open(
        seal_segment(
            from_index=5,
            to_index=12,
            root=_tree(12).root(),
            leaf_data=forged_leaves,
            recipients={AUDITOR: (0, auditor_keys[1])},
        ),
        auditor_keys,
    )
    genuine = _open(_seal(5, 12, auditor_keys, gateway_keys), auditor_keys)
    audit = verify_log(_heads(sizes), [forged, *good, genuine])
    assert audit.size == 12
    assert audit.heads_verified == 2
    assert audit.entries == tuple(make_entry(n) for n in range(12))
    assert any(forged.key in problem for problem in audit.problems)


def test_a_head_may_span_several_segments(auditor_keys: Keys, gateway_keys: Keys) -> None:
    """A head the chain lost with its newest blocks, and the next head anchored on top: heads 5 and 15,
    segments [0, 5), [5, 10) and [10, 15). A longer segment that leads nowhere is not taken."""
    segments = [_open(_seal(a, b, auditor_keys, gateway_keys), auditor_keys) for a, b in [(0, 5), (5, 10), (10, 15)]]
    dead_end = _open(_seal(5, 12, auditor_keys, gateway_keys), auditor_keys)
    audit = verify_log(_heads([5, 15]), [dead_end, *segments])
    assert audit.ok, audit.problems
    assert (audit.size, audit.heads_verified, audit.extra_segments) == (15, 2, (dead_end.key,))
    assert audit.entries == tuple(make_entry(n) for n in range(15))
