"""The redactable content commitment: a grantee checks a *masked* read against the anchored commitment.

A record's anchored commitment must let any reader check what it received (DESIGN.md, Records), yet a
masked read withholds ID numbers, phones and what derives from them, and a plain ``SHA-256(salt ||
plaintext)`` can only be checked by someone holding the whole plaintext. So the fields that masking may
withhold are committed to one by one, and the commitment covers those field commitments (the
construction of redactable signatures, Johnson et al., CT-RSA 2002, with a hash in place of the
signature). Scheme v3, for every record sealed now::

    field_key       = HMAC-SHA256(data_key, "ledger/field-key/v1")
    field_salt(p)   = HMAC-SHA256(field_key, p)              p = "subjects[0].id_number", "source.native_id", …
    field_digest(p) = SHA-256("ledger/field/v3" || field_salt(p) || canonical JSON of the value)
    committed form  = the record with the value at each path p of masking.sensitive_fields(record)
                      replaced by {"$field": hex field_digest(p)}
    commitment      = SHA-256("ledger/commitment/v3" || salt || canonical JSON of the committed form)

``sensitive_fields`` is every field masking may withhold: ID numbers and phones, what is declared to
derive from them (birth date, gender, a resident's native id, …) and any text found to hold one, so a
read that masks any of them still opens the commitment. Canonical JSON is the record's own (sorted
keys, no whitespace, UTF-8). The salt and the data key stay inside the envelope. With a read the gateway
hands over a :class:`CommitmentOpening`: the salt, the ``field_salt`` of every such field it revealed,
and only the ``field_digest`` of every field it masked. The reader rebuilds the committed form from
what it received and checks the anchored value (:func:`verify_opening`). A field salt is a 256-bit
secret, so a masked value cannot be guessed from its digest (an ID number alone has far too little
entropy to hide behind a bare hash), and HMAC keeps the field salts of other fields unknown to a reader
given one of them.

Records sealed before v3 keep their scheme, and open and verify as they always did:

* v2 (``ledger/commitment/v2``, ``ledger/field/v1``) committed only ``subjects[i].id_number`` and
  ``subjects[i].phone`` one by one. Its opening can cover only those, so a masked read of a v2 record
  that also withholds a derived field (a birth date, a resident's native id) does not verify: the
  masking is kept, since a birth date beside a masked ID number gives the number back (DESIGN.md
  invariant 8), and the answer's ``masked_fields`` says what was withheld.
* v1 (:data:`LEGACY_SCHEME`) committed the whole plaintext; a masked copy never opens it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger_api.crypto.envelope import compute_commitment
from ledger_api.errors import LedgerError
from ledger_api.records.masking import MASKED_FIELDS, leaves, sensitive_fields

__all__ = [
    "COMMITMENT_SCHEME",
    "LEGACY_COMMITMENT",
    "LEGACY_SCHEME",
    "RECORD_COMMITMENT",
    "SEALED_SCHEMES",
    "V2_COMMITMENT",
    "V2_SCHEME",
    "CommitmentError",
    "CommitmentOpening",
    "LegacyCommitment",
    "RedactableCommitment",
    "commitment_of",
    "legacy_opening",
    "open_commitment",
    "sealed_under",
    "verify_opening",
]

COMMITMENT_SCHEME = "ledger/commitment/v3"
V2_SCHEME = "ledger/commitment/v2"
"""Records sealed before derived fields were committed one by one (see the module docstring)."""
LEGACY_SCHEME = "ledger/commitment/v1"
"""Records sealed before the redactable scheme: ``SHA-256(v1 tag || salt || plaintext)``. Their opening
can carry the salt only when nothing is masked (``crypto.envelope.compute_commitment``)."""
_FIELD_DOMAIN = {COMMITMENT_SCHEME: b"ledger/field/v3", V2_SCHEME: b"ledger/field/v1"}
_FIELD_KEY_LABEL = b"ledger/field-key/v1"
_DIGEST_MARK = "$field"
_V2_MASKABLE = ("id_number", "phone")  # frozen: what v2 committed one by one, whatever masking becomes


class CommitmentError(LedgerError):
    """The record is not a JSON object, or an opening does not fit the record it came with."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _field_salt(field_key: bytes, path: str) -> bytes:
    return hmac.new(field_key, path.encode(), hashlib.sha256).digest()


def _field_digest(scheme: str, field_salt: bytes, value: Any) -> str:
    return hashlib.sha256(_FIELD_DOMAIN[scheme] + field_salt + _canonical(value)).hexdigest()


def _field_key(data_key: bytes) -> bytes:
    return hmac.new(data_key, _FIELD_KEY_LABEL, hashlib.sha256).digest()


def _digest_of_form(scheme: str, salt: bytes, form: Mapping[str, Any]) -> str:
    return hashlib.sha256(scheme.encode() + salt + _canonical(form)).hexdigest()


def _v2_maskable(record: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(path, the subject holding it, field name) of every value v2 committed one by one, in record order."""
    subjects = record.get("subjects")
    if not isinstance(subjects, list):
        return
    for index, subject in enumerate(subjects):
        if not isinstance(subject, dict):
            continue
        for name in _V2_MASKABLE:
            if subject.get(name):
                yield f"subjects[{index}].{name}", subject, name


def _values(record: Mapping[str, Any], scheme: str) -> dict[str, Any]:
    """Path → value of every field ``scheme`` commits to one by one, in record order."""
    if scheme == V2_SCHEME:
        return {path: subject[name] for path, subject, name in _v2_maskable(record)}
    fields = sensitive_fields(dict(record))
    return {leaf.path: leaf.value for leaf in leaves(dict(record)) if leaf.path in fields}


def _committed_form(record: Mapping[str, Any], digests: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``record`` with the value at each path in ``digests`` replaced by its digest."""
    form: dict[str, Any] = json.loads(_canonical(record))
    for leaf in list(leaves(form)):
        if leaf.path in digests:
            leaf.replace({_DIGEST_MARK: digests[leaf.path]})
    return form


def _parse(plaintext: bytes) -> dict[str, Any]:
    try:
        record = json.loads(plaintext)
    except (UnicodeDecodeError, ValueError):
        raise CommitmentError("the record is not UTF-8 JSON") from None
    if not isinstance(record, dict):
        raise CommitmentError("the record is not a JSON object")
    return record


def commitment_of(record: Mapping[str, Any], *, salt: bytes, data_key: bytes, scheme: str = COMMITMENT_SCHEME) -> str:
    """The anchored commitment (hex) of ``record`` sealed with ``salt`` under ``data_key``."""
    if scheme not in _FIELD_DOMAIN:
        raise CommitmentError(f"no redactable commitment scheme {scheme!r}")
    field_key = _field_key(data_key)
    digests = {
        path: _field_digest(scheme, _field_salt(field_key, path), value)
        for path, value in _values(record, scheme).items()
    }
    return _digest_of_form(scheme, salt, _committed_form(record, digests))


@dataclass(frozen=True, kw_only=True)
class RedactableCommitment:
    """The envelope's commitment scheme for records (``seal_record``/``open_record`` take it)."""

    name: str = COMMITMENT_SCHEME

    def commit(self, *, plaintext: bytes, salt: bytes, data_key: bytes) -> str:
        return commitment_of(_parse(plaintext), salt=salt, data_key=data_key, scheme=self.name)


@dataclass(frozen=True, kw_only=True)
class LegacyCommitment:
    """The whole-plaintext commitment records were sealed under before the redactable schemes."""

    name: str = LEGACY_SCHEME

    def commit(self, *, plaintext: bytes, salt: bytes, data_key: bytes) -> str:
        return compute_commitment(plaintext, salt)


#: The scheme every new record version is sealed with.
RECORD_COMMITMENT = RedactableCommitment()
V2_COMMITMENT = RedactableCommitment(name=V2_SCHEME)
LEGACY_COMMITMENT = LegacyCommitment()
#: Every scheme a stored record version may have been sealed under, newest first: a reader tries them
#: in turn against the anchored commitment (the blob does not name its scheme).
SEALED_SCHEMES: tuple[RedactableCommitment | LegacyCommitment, ...] = (
    RECORD_COMMITMENT,
    V2_COMMITMENT,
    LEGACY_COMMITMENT,
)


def sealed_under(
    *, plaintext: bytes, salt: bytes, data_key: bytes, commitment: str
) -> RedactableCommitment | LegacyCommitment | None:
    """The scheme of :data:`SEALED_SCHEMES` whose commitment of ``plaintext`` is ``commitment``, if any."""
    for scheme in SEALED_SCHEMES:
        try:
            value = scheme.commit(plaintext=plaintext, salt=salt, data_key=data_key)
        except CommitmentError:
            continue  # not a JSON object: only the whole-plaintext scheme can have sealed it
        if hmac.compare_digest(value, commitment.lower()):
            return scheme
    return None


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
    record: Mapping[str, Any],
    *,
    salt: bytes,
    data_key: bytes,
    masked_paths: Sequence[str],
    scheme: str = COMMITMENT_SCHEME,
) -> CommitmentOpening:
    """The opening for a reader that receives ``record`` (the unmasked original) with ``masked_paths``
    masked, for a record version sealed under ``scheme``."""
    if scheme == LEGACY_SCHEME:
        return legacy_opening(salt=salt, masked=bool(masked_paths))
    if scheme not in _FIELD_DOMAIN:
        raise CommitmentError(f"no redactable commitment scheme {scheme!r}")
    field_key = _field_key(data_key)
    withheld = set(masked_paths)
    revealed: dict[str, str] = {}
    masked: dict[str, str] = {}
    for path, value in _values(record, scheme).items():
        field_salt = _field_salt(field_key, path)
        if path in withheld:
            masked[path] = _field_digest(scheme, field_salt, value)
        else:
            revealed[path] = field_salt.hex()
    unknown = withheld - set(masked)
    if unknown and scheme == COMMITMENT_SCHEME:
        raise CommitmentError(f"masked paths that are not maskable values of the record: {sorted(unknown)}")
    # A v2 opening covers what v2 committed one by one; a copy withholding more does not open it.
    return CommitmentOpening(scheme=scheme, salt=salt.hex(), revealed=revealed, masked=masked)


def legacy_opening(*, salt: bytes, masked: bool) -> CommitmentOpening:
    """The opening of a record sealed under :data:`LEGACY_SCHEME`: its salt, only if nothing was masked."""
    return CommitmentOpening(scheme=LEGACY_SCHEME, salt="" if masked else salt.hex(), revealed={}, masked={})


def _required(received: Mapping[str, Any], scheme: str) -> set[str]:
    """Paths the opening must cover: every value of ``received`` its scheme commits to one by one and that
    can be told from the copy itself (a declared field that is not null; text scrubbed of a masked value
    no longer shows one, and is covered only by the opening)."""
    if scheme == V2_SCHEME:
        return {path for path, _, _ in _v2_maskable(received)}
    record = dict(received)
    declared = {f.pattern for f in MASKED_FIELDS.get(str(record.get("record_type")), ())}
    return {leaf.path for leaf in leaves(record) if leaf.pattern in declared and leaf.value is not None}


def verify_opening(received: Mapping[str, Any], opening: CommitmentOpening, commitment: str) -> bool:
    """Whether ``received`` (as the reader got it, masked values included) with ``opening`` opens the
    anchored ``commitment``. Every field committed one by one must be covered by the opening exactly once."""
    if opening.scheme == LEGACY_SCHEME:
        if opening.masked or not opening.salt:
            return False  # a masked copy cannot open a whole-plaintext commitment
        try:
            salt = bytes.fromhex(opening.salt)
        except ValueError:
            return False
        digest = hashlib.sha256(LEGACY_SCHEME.encode() + salt + _canonical(received)).hexdigest()
        return hmac.compare_digest(digest, commitment.lower())
    if opening.scheme not in _FIELD_DOMAIN:
        return False
    scheme = opening.scheme
    covered = set(opening.revealed) | set(opening.masked)
    present = {leaf.path: leaf.value for leaf in leaves(dict(received))}
    if set(opening.revealed) & set(opening.masked) or not covered <= set(present):
        return False
    if not _required(received, scheme) <= covered or (scheme == V2_SCHEME and covered != _required(received, scheme)):
        return False
    try:
        salt = bytes.fromhex(opening.salt)
        digests = dict(opening.masked)
        for path, field_salt in opening.revealed.items():
            digests[path] = _field_digest(scheme, bytes.fromhex(field_salt), present[path])
    except ValueError:
        return False
    return hmac.compare_digest(_digest_of_form(scheme, salt, _committed_form(received, digests)), commitment.lower())
