"""Where transaction signers come from: an encrypted keystore file or a key in the environment.

The devnet's dev keys are public knowledge; they are accepted only when the chain is the devnet
(chain id 31337), so a demo default can never sign on a real consortium chain.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger_api.chain.devnet import DEVNET_CHAIN_ID, dev_account, dev_private_keys
from ledger_api.errors import ConfigurationError

#: Id under which a gateway keeps its access-log writer's signer (never an organisation id: those cannot
#: start with "@").
LOG_WRITER_ID = "@log-writer"

#: A transaction signer held in memory; other packages name it without importing eth_account.
Signer = LocalAccount


def load_signer(
    *,
    chain_id: int,
    key_env: str | None = None,
    keystore: Path | None = None,
    keystore_password: str | None = None,
    devnet_default_index: int | None = 0,
    demo: bool = False,
) -> LocalAccount:
    """The signer named by a keystore file, else by the environment variable ``key_env``.

    In demo mode on the devnet with neither, dev account ``devnet_default_index`` is used (embedded
    defaults); its key is public, so nothing else may fall back to it.
    """
    account: LocalAccount | None = None
    if keystore is not None:
        if keystore_password is None:
            raise ConfigurationError(f"keystore {keystore} needs a password: set LEDGER_KEYSTORE_PASSWORD")
        try:
            encrypted = json.loads(keystore.read_text(encoding="utf-8"))
            account = Account.from_key(Account.decrypt(encrypted, keystore_password))
        except FileNotFoundError:
            raise ConfigurationError(f"keystore file {keystore} does not exist") from None
        except (ValueError, KeyError) as exc:
            raise ConfigurationError(f"cannot open keystore {keystore}: {exc}") from None
    elif key_env and os.environ.get(key_env):
        try:
            account = Account.from_key(os.environ[key_env].strip())
        except (ValueError, TypeError):
            raise ConfigurationError(f"{key_env} does not hold a valid hex private key") from None
    elif demo and chain_id == DEVNET_CHAIN_ID and devnet_default_index is not None:
        return dev_account(devnet_default_index)
    else:
        raise ConfigurationError(
            f"no signer: set {key_env or 'a key variable'} or LEDGER_KEYSTORE "
            "(the devnet's dev keys need LEDGER_DEMO=1 and a loopback RPC)"
        )
    if chain_id != DEVNET_CHAIN_ID and account.key.hex().removeprefix("0x") in dev_private_keys():
        raise ConfigurationError(
            f"refusing a public devnet key on chain {chain_id}: use a real key for anything but the devnet"
        )
    return account


def write_keystore(account: LocalAccount, *, path: Path, password: str) -> Path:
    """Encrypt ``account`` into a standard (Web3 Secret Storage) keystore file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(Account.encrypt(account.key, password)), encoding="utf-8")
    path.chmod(0o600)
    return path


class SignerStore:
    """The gateway's custody of organisations' transaction signers: one Web3 Secret Storage file each.

    The gateway anchors an organisation's records with that organisation's own signer (only the
    owner's signer may anchor, see ``RecordAnchors``), so it keeps the keys encrypted at rest under the
    gateway's master secret.
    """

    def __init__(self, *, directory: Path, password: str) -> None:
        self._directory = directory
        self._password = password

    def _path(self, org_id: str) -> Path:
        return self._directory / f"{org_id.encode().hex()}.json"

    def put(self, org_id: str, account: LocalAccount) -> Path:
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(org_id)
        tmp = path.with_suffix(".tmp")
        # PBKDF2 with 200k iterations: opening every signer at start-up stays well under a second each.
        encrypted = Account.encrypt(account.key, self._password, kdf="pbkdf2", iterations=200_000)
        tmp.write_text(json.dumps({"org_id": org_id, "keystore": encrypted}), encoding="utf-8")
        tmp.chmod(0o600)
        os.replace(tmp, path)
        return path

    def get(self, org_id: str) -> LocalAccount | None:
        path = self._path(org_id)
        if not path.is_file():
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
        try:
            account: LocalAccount = Account.from_key(Account.decrypt(document["keystore"], self._password))
        except ValueError as exc:
            raise ConfigurationError(f"cannot open the signer of {org_id}: {exc}") from None
        return account

    def org_ids(self) -> list[str]:
        if not self._directory.is_dir():
            return []
        return sorted(json.loads(p.read_text(encoding="utf-8"))["org_id"] for p in self._directory.glob("*.json"))
