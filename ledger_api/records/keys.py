"""Rotation of an organisation's HPKE key: the chain and the gateway keystore move together.

The new key is published on chain first, by the organisation's own signer (the registry allows no
one else), and only then stored under the same index in the keystore. Records sealed under earlier
keys stay readable: the keystore never drops a key, and every blob names the key index it used.
"""

from __future__ import annotations

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.signers import SignerStore
from ledger_api.crypto import hpke
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.crypto.keystore_secret import master_secret
from ledger_api.errors import ConfigurationError
from ledger_api.settings import Settings


def rotate_organisation_key(
    *, settings: Settings, chain: LedgerChain, org_id: str, suite: hpke.HpkeSuite = hpke.HpkeSuite.X25519
) -> tuple[int, bytes]:
    secret = master_secret(settings, chain_id=chain.transactor.chain_id)
    keystore = OrgKeystore.open(settings.keystore_dir, master_secret=secret, demo=True)
    signer = SignerStore(directory=settings.home / "signers", password=secret).get(org_id)
    if signer is None:
        raise ConfigurationError(
            f"the gateway holds no signer for {org_id}: `ledger enrol {org_id} --signer-key-env …`"
        )
    private_key, public_key = hpke.generate_keypair(suite)
    chain.rotate_key(signer=signer, org_id=org_id, public_key=public_key)
    key_index = chain.organisation(org_id).key_count - 1
    keystore.import_key(org_id, private_key, key_index=key_index)
    return key_index, public_key
