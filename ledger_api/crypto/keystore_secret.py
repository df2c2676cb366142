"""Which secret opens the keystores: the one in the settings, or the public demo placeholder in demo mode.

Kept apart from :mod:`ledger_api.crypto.keystore` so that the keystore itself knows nothing of settings
or chains; the gateway, the CLI, provisioning and key rotation all ask here.
"""

from __future__ import annotations

from ledger_api.crypto.errors import InsecureSecretError
from ledger_api.crypto.keystore import DEMO_MASTER_SECRET, require_real_secret
from ledger_api.settings import Settings


def master_secret(settings: Settings, *, chain_id: int) -> str:
    """The keystore secret; the public demo placeholder only in demo mode (LEDGER_DEMO=1, loopback RPC).

    Before, chain id 31337 alone was enough, and any network calling itself 31337 got the demo secret."""
    demo = settings.demo_mode
    secret = settings.master_secret.get_secret_value() if settings.master_secret else None
    if secret is None and demo:
        return DEMO_MASTER_SECRET
    if secret is None:
        raise InsecureSecretError(
            f"set LEDGER_MASTER_SECRET (chain {chain_id}; the demo secret needs LEDGER_DEMO=1 and a loopback RPC)"
        )
    return require_real_secret(secret, demo=demo)
