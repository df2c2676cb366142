"""Helpers of the crypto tests: memoised key pairs per suite and organisation, and a sealing shortcut."""

from __future__ import annotations

from dataclasses import dataclass

from ledger_api.crypto import HpkeSuite, RecipientKey, SealedRecord, generate_keypair, seal_record

OWNER = "police-001"
GRANTEE = "committee-007"
OTHER = "property-042"


@dataclass(frozen=True, kw_only=True)
class OrgKeys:
    org_id: str
    key_index: int
    private_key: bytes
    public_key: bytes

    @property
    def recipient(self) -> RecipientKey:
        return RecipientKey(org_id=self.org_id, key_index=self.key_index, public_key=self.public_key)


def make_keys(org_id: str, suite: HpkeSuite, key_index: int = 0) -> OrgKeys:
    private_key, public_key = generate_keypair(suite)
    return OrgKeys(org_id=org_id, key_index=key_index, private_key=private_key, public_key=public_key)


_KEYS: dict[tuple[str, HpkeSuite, int], OrgKeys] = {}


def keys_for(org_id: str, suite: HpkeSuite, key_index: int = 0) -> OrgKeys:
    """Memoised key pairs, so every test of a suite shares them."""
    slot = (org_id, suite, key_index)
    if slot not in _KEYS:
        _KEYS[slot] = make_keys(org_id, suite, key_index)
    return _KEYS[slot]


def seal(
    plaintext: bytes,
    *,
    suite: HpkeSuite,
    record_id: str = "rec-0001",
    version: int = 1,
    record_type: str = "incident",
    readers: tuple[str, ...] = (),
) -> SealedRecord:
    recipients = {org: keys_for(org, suite).recipient for org in (OWNER, *readers)}
    return seal_record(
        plaintext=plaintext,
        record_id=record_id,
        owner_org=OWNER,
        record_type=record_type,
        version=version,
        recipients=recipients,
    )
