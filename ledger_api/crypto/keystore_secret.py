"""Which secret opens the keystores: the one in the settings, or the public demo placeholder on the devnet.

Kept apart from :mod:`ledger_api.crypto.keystore` so that the keystore itself knows nothing of settings
or chains; the gateway, the CLI, provisioning and key rotation all ask here.
"""

from __future__ import annotations

from ledger_api.chain.devnet import DEVNET_CHAIN_ID
from ledger_api.crypto.keystore import DEMO_MASTER_SECRET, require_real_secret
from ledger_api.settings import Settings


def master_secret(settings: Settings, *, chain_id: int) -> str:
    """The keystore secret; the public demo placeholder only on the devnet or with LEDGER_DEMO=1."""
    demo = settings.demo or chain_id == DEVNET_CHAIN_ID
    secret = settings.master_secret.get_secret_value() if settings.master_secret else None
    if secret is None and demo:
        return DEMO_MASTER_SECRET
    return require_real_secret(secret, demo=demo)
