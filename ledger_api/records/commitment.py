"""The redactable content commitment: a grantee checks a *masked* read against the anchored commitment.

A record's anchored commitment must let any reader check what it received (DESIGN.md, Records), yet a
masked read withholds ID numbers and phones, and a plain ``SHA-256(salt || plaintext)`` can only be
checked by someone holding the whole plaintext. So the fields that masking may withhold are committed
to one by one, and the commitment covers those field commitments (the construction of redactable
signatures, Johnson et al., CT-RSA 2002, with a hash in place of the signature)::

    field_key       = HMAC-SHA256(data_key, "ledger/field-key/v1")
    field_salt(p)   = HMAC-SHA256(field_key, p)                      p = "subjects[0].id_number", …
    field_digest(p) = SHA-256("ledger/field/v1" || field_salt(p) || canonical JSON of the value)
    committed form  = the record with each maskable value replaced by {"$field": hex field_digest(p)}
    commitment      = SHA-256("ledger/commitment/v2" || salt || canonical JSON of the committed form)

Canonical JSON is the record's own (sorted keys, no whitespace, UTF-8). The salt and the data key stay
inside the envelope. With a read the gateway hands over a :class:`CommitmentOpening`: the salt, the
``field_salt`` of every maskable value it revealed, and only the ``field_digest`` of every value it
masked. The reader rebuilds the committed form from what it received and checks the anchored value
(:func:`verify_opening`). A field salt is a 256-bit secret, so a masked value cannot be guessed from
its digest (an ID number alone has far too little entropy to hide behind a bare hash), and
HMAC keeps the field salts of other fields unknown to a reader given one of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ledger_api.errors import LedgerError
from ledger_api.records.masking import MASKABLE

__all__ = [
    "COMMITMENT_SCHEME",
    "LEGACY_SCHEME",
    "RECORD_COMMITMENT",
    "CommitmentError",
    "CommitmentOpening",
    "RedactableCommitment",
    "commitment_of",
    "open_commitment",
    "verify_opening",
]

COMMITMENT_SCHEME = "ledger/commitment/v2"
LEGACY_SCHEME = "ledger/commitment/v1"
"""Records sealed before the redactable scheme: ``SHA-256(v1 tag || salt || plaintext)``. Their opening
can carry the salt only when nothing is masked (``crypto.envelope.compute_commitment``)."""
_COMMITMENT_DOMAIN = COMMITMENT_SCHEME.encode()
_FIELD_DOMAIN = b"ledger/field/v1"
_FIELD_KEY_LABEL = b"ledger/field-key/v1"
_DIGEST_MARK = "$field"


class CommitmentError(LedgerError):
    """The record is not a JSON object, or an opening does not fit the record it came with."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _maskable(record: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(path, the subject holding it, field name) of every maskable value present, in record order: the
    very values :func:`~ledger_api.records.masking.mask_record` may withhold."""
    subjects = record.get("subjects")
    if not isinstance(subjects, list):
        return
    for index, subject in enumerate(subjects):
        if not isinstance(subject, dict):
            continue
        for name in MASKABLE:
            if subject.get(name):
                yield f"subjects[{index}].{name}", subject, name


def _field_salt(field_key: bytes, path: str) -> bytes:
    return hmac.new(field_key, path.encode(), hashlib.sha256).digest()


def _field_digest(field_salt: bytes, value: Any) -> str:
    return hashlib.sha256(_FIELD_DOMAIN + field_salt + _canonical(value)).hexdigest()


def _field_key(data_key: bytes) -> bytes:
    return hmac.new(data_key, _FIELD_KEY_LABEL, hashlib.sha256).digest()


def _digest_of_form(salt: bytes, form: Mapping[str, Any]) -> str:
    return hashlib.sha256(_COMMITMENT_DOMAIN + salt + _canonical(form)).hexdigest()


def _committed_form(record: Mapping[str, Any], digests: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``record`` with each maskable value at a path in ``digests`` replaced by its digest."""
    form: dict[str, Any] = json.loads(_canonical(record))
    for path, subject, name in list(_maskable(form)):
        if path in digests:
            subject[name] = {_DIGEST_MARK: digests[path]}
    return form


def _parse(plaintext: bytes) -> dict[str, Any]:
    try:
        record = json.loads(plaintext)
    except (UnicodeDecodeError, ValueError):
        raise CommitmentError("the record is not UTF-8 JSON") from None
    if not isinstance(record, dict):
        raise CommitmentError("the record is not a JSON object")
    return record


def commitment_of(record: Mapping[str, Any], *, salt: bytes, data_key: bytes) -> str:
    """The anchored commitment (hex) of ``record`` sealed with ``salt`` under ``data_key``."""
    field_key = _field_key(data_key)
    digests = {
        path: _field_digest(_field_salt(field_key, path), subject[name]) for path, subject, name in _maskable(record)
    }
    return _digest_of_form(salt, _committed_form(record, digests))


@dataclass(frozen=True, kw_only=True)
class RedactableCommitment:
    """The envelope's commitment scheme for records (``seal_record``/``open_record`` take it)."""

    name: str = COMMITMENT_SCHEME

    def commit(self, *, plaintext: bytes, salt: bytes, data_key: bytes) -> str:
        return commitment_of(_parse(plaintext), salt=salt, data_key=data_key)


#: The scheme every record version is sealed and opened with.
RECORD_COMMITMENT = RedactableCommitment()


@dataclass(frozen=True, kw_only=True)
class CommitmentOpening:
    """What a reader needs to check a (possibly masked) record against the anchored commitment."""

    scheme: str
    salt: str
    """Hex salt of the outer hash."""
    revealed: dict[str, str]
    """Path → hex field salt, for each maskable value the reader received in clear."""
    masked: dict[str, str]
    """Path → hex field digest, for each maskable value the reader received masked."""

    def to_json(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "salt": self.salt, "revealed": self.revealed, "masked": self.masked}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CommitmentOpening:
        try:
            return cls(
                scheme=str(document["scheme"]),
                salt=str(document["salt"]),
                revealed={str(k): str(v) for k, v in dict(document.get("revealed") or {}).items()},
                masked={str(k): str(v) for k, v in dict(document.get("masked") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CommitmentError(f"not a commitment opening: {exc}") from None


def open_commitment(
    record: Mapping[str, Any], *, salt: bytes, data_key: bytes, masked_paths: tuple[str, ...] | list[str]
) -> CommitmentOpening:
    """The opening for a reader that receives ``record`` with ``masked_paths`` masked (``record`` is the
    unmasked original)."""
    field_key = _field_key(data_key)
    withheld = set(masked_paths)
    revealed: dict[str, str] = {}
    masked: dict[str, str] = {}
    for path, subject, name in _maskable(record):
        field_salt = _field_salt(field_key, path)
        if path in withheld:
            masked[path] = _field_digest(field_salt, subject[name])
        else:
            revealed[path] = field_salt.hex()
    unknown = withheld - set(masked)
    if unknown:
        raise CommitmentError(f"masked paths that are not maskable values of the record: {sorted(unknown)}")
    return CommitmentOpening(scheme=COMMITMENT_SCHEME, salt=salt.hex(), revealed=revealed, masked=masked)


def legacy_opening(*, salt: bytes, masked: bool) -> CommitmentOpening:
    """The opening of a record sealed under :data:`LEGACY_SCHEME`: its salt, only if nothing was masked."""
    return CommitmentOpening(scheme=LEGACY_SCHEME, salt="" if masked else salt.hex(), revealed={}, masked={})


def verify_opening(received: Mapping[str, Any], opening: CommitmentOpening, commitment: str) -> bool:
    """Whether ``received`` (as the reader got it, masked values included) with ``opening`` opens the
    anchored ``commitment``. Every maskable value must be covered by the opening exactly once."""
    if opening.scheme == LEGACY_SCHEME:
        if opening.masked or not opening.salt:
            return False  # a masked copy cannot open a whole-plaintext commitment
        try:
            salt = bytes.fromhex(opening.salt)
        except ValueError:
            return False
        digest = hashlib.sha256(LEGACY_SCHEME.encode() + salt + _canonical(received)).hexdigest()
        return hmac.compare_digest(digest, commitment.lower())
    if opening.scheme != COMMITMENT_SCHEME:
        return False
    try:
        salt = bytes.fromhex(opening.salt)
        digests = dict(opening.masked)
        paths = [path for path, _, _ in _maskable(received)]
        if set(paths) != set(opening.revealed) | set(opening.masked) or set(opening.revealed) & set(opening.masked):
            return False
        for path, subject, name in _maskable(received):
            if path in opening.revealed:
                digests[path] = _field_digest(bytes.fromhex(opening.revealed[path]), subject[name])
    except ValueError:
        return False
    return hmac.compare_digest(_digest_of_form(salt, _committed_form(received, digests)), commitment.lower())
