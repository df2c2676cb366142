"""A directory of per-organisation HPKE private keys, record-id keys and the consortium secret, encrypted at rest.

Layout (directory mode 0700, every file mode 0600)::

    keystore.json                 {"format": 1, "kdf": "scrypt", "salt", "n", "r", "p", "verifier"}
    consortium.key                sealed 32 random bytes (blind-index secret), created once
    orgs/<hex(org_id)>/<index>.key  sealed encoded HPKE private key (kem_id || secret), index = 10 digits
    orgs/<hex(org_id)>/record-id.key  sealed 32 random bytes: the organisation's record-id key (HMAC key of
                                  its record ids, adapters.canonical.derive_record_id), created with its first
                                  HPKE key and never changed (a new key would give its records new ids)

Master key: ``scrypt(master_secret, salt, N, r=8, p=1)`` (RFC 7914; memory-hard because the environment
secret may be a passphrase) → 32 bytes of input keying material, then HKDF-SHA256 (RFC 5869) with
distinct ``info`` labels derives the key-encryption key and a verifier. The verifier, stored in
``keystore.json``, lets a wrong secret fail with one clear :class:`WrongMasterSecretError` before any
file is touched; it reveals nothing about the KEK (HKDF outputs under different labels are independent).

Sealed file: ``b"LKS1" || nonce (12) || AES-256-GCM(KEK, nonce, payload, AD)`` with
``AD = "ledger/keystore/v1" || kind || org_id || key_index`` (SP 800-38D §5.2.1), so a file copied over
another one (another org, another index, the consortium key) fails authentication. A random 96-bit nonce
per file is safe: a keystore seals far fewer than 2^32 files under one KEK (SP 800-38D §8.3).

Files are written atomically and never overwritten: temp file (O_EXCL, 0600), write, fsync, hard link
to the final name (fails if it exists, so two processes rotating at once get distinct indexes),
unlink the temp file, fsync the directory. Rotation appends a new index; old keys stay readable, so
records wrapped for them stay readable. Key indexes are meant to match the chain's indexes
(``OrganisationRegistry.rotateKey``): publish each new key before generating the next.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from adapters.canonical import RECORD_ID_KEY_SIZE
from ledger_api.crypto import hpke
from ledger_api.crypto._framing import lp8_text, uint
from ledger_api.crypto.errors import HpkeError, InsecureSecretError, KeystoreError, WrongMasterSecretError

__all__ = [
    "CONSORTIUM_KEY_SIZE",
    "DEFAULT_SCRYPT_N",
    "DEMO_MASTER_SECRET",
    "MIN_SECRET_LENGTH",
    "OrgKeystore",
    "demo_record_id_key",
    "require_real_secret",
]

#: The published placeholder of the local demo. :func:`require_real_secret` refuses it outside demo mode.
DEMO_MASTER_SECRET = "ledger-demo-master-secret-not-for-production"  # noqa: S105 - public on purpose
#: Shortest master secret accepted outside demo mode (characters).
MIN_SECRET_LENGTH = 16
#: scrypt cost (RFC 7914 §2): N = 2^15, r = 8, p = 1 uses 32 MiB and ~0.2 s once per process start.
DEFAULT_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_MAX_SCRYPT_N = 2**20  # refuse absurd costs from a tampered keystore.json (1 GiB of memory)
_SALT_SIZE = 16
CONSORTIUM_KEY_SIZE = 32

_FORMAT = 1
_META_NAME = "keystore.json"
_CONSORTIUM_NAME = "consortium.key"
_RECORD_ID_KEY_NAME = "record-id.key"  # never matches _KEY_FILE: not taken for an HPKE key index
_ORGS_DIR = "orgs"
_FILE_MAGIC = b"LKS1"
_NONCE_SIZE = 12
_AD_DOMAIN = b"ledger/keystore/v1"
_KEK_INFO = b"ledger/keystore/kek/v1"
_VERIFIER_INFO = b"ledger/keystore/verifier/v1"
_KEY_FILE = re.compile(r"^(\d{10})\.key$")
_MAX_KEY_INDEX = 0xFFFFFFFF
_MAX_RACE_RETRIES = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class _Meta:
    """``keystore.json``: scrypt parameters (RFC 7914) and the verifier of the master secret."""

    salt: bytes
    n: int
    r: int
    p: int
    verifier: bytes


def require_real_secret(secret: str | None, *, demo: bool) -> str:
    """Return ``secret`` if it may protect real keys; raise :class:`InsecureSecretError` otherwise.

    Outside demo mode the demo placeholder and secrets shorter than :data:`MIN_SECRET_LENGTH` characters
    are refused. An empty or blank secret is refused even in demo mode: it is never what anyone meant.
    """
    if secret is None or not isinstance(secret, str) or not secret.strip():
        raise InsecureSecretError("the keystore master secret is empty")
    if demo:
        return secret
    if secret.strip() == DEMO_MASTER_SECRET:
        raise InsecureSecretError(
            "the keystore master secret is the published demo placeholder: set a real secret (or run in demo mode)"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise InsecureSecretError(
            f"the keystore master secret has {len(secret)} characters; at least {MIN_SECRET_LENGTH} are required"
        )
    return secret


def demo_record_id_key(org_id: str) -> bytes:
    """The published record-id key of a demo organisation (fixed, so demo record ids are reproducible).

    A keystore opened outside demo mode refuses to use it (:meth:`OrgKeystore.record_id_key`): with it,
    anyone could test guessed native ids against that organisation's record ids."""
    return hashlib.sha256(f"ledger-demo-record-id:{org_id}".encode()).digest()


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new_file(path: Path, data: bytes) -> None:
    """Atomically create ``path`` with ``data`` (mode 0600). Raises FileExistsError if it exists."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # exact mode, whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # atomic and no-clobber: FileExistsError if a concurrent writer won
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EOPNOTSUPP):
                raise
            # Filesystems without hard links: rename is still atomic, the existence check is best effort.
            if path.exists():
                raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
            os.rename(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(path.parent)


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=False, exist_ok=False)
    except FileExistsError:
        if not directory.is_dir():
            raise KeystoreError(f"keystore path {directory} exists and is not a directory") from None
        return
    _fsync_dir(directory.parent)


class OrgKeystore:
    """Per-organisation HPKE private keys and record-id keys and the consortium secret, sealed under a master
    secret."""

    def __init__(self, *, directory: Path, kek: bytes, demo: bool = False) -> None:
        # Use OrgKeystore.open(); the constructor trusts that ``kek`` was verified.
        self._dir = directory
        self._aead = AESGCM(kek)
        self._demo = demo
        self._cache: dict[tuple[str, int], bytes] = {}
        self._consortium: bytes | None = None
        self._record_id_keys: dict[str, bytes] = {}

    @property
    def directory(self) -> Path:
        return self._dir

    # -- opening --------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        master_secret: str,
        demo: bool = False,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> OrgKeystore:
        """Open (or create) the keystore in ``directory``.

        ``master_secret`` goes through :func:`require_real_secret` (``demo`` relaxes it). ``scrypt_n`` only
        applies when the keystore is created; an existing keystore uses the cost stored in it.
        """
        secret = require_real_secret(master_secret, demo=demo)
        path = Path(directory)
        if path.parent != path and not path.parent.is_dir():
            raise KeystoreError(f"cannot create the keystore: {path.parent} is not a directory")
        _ensure_dir(path)
        meta_path = path / _META_NAME
        if not meta_path.exists():
            cls._initialise(meta_path, secret, scrypt_n)
        meta = cls._read_meta(meta_path)
        ikm = Scrypt(salt=meta.salt, length=32, n=meta.n, r=meta.r, p=meta.p).derive(secret.encode("utf-8"))
        if not hmac.compare_digest(_hkdf(ikm, _VERIFIER_INFO), meta.verifier):
            raise WrongMasterSecretError(f"the master secret does not open the keystore at {path}")
        return cls(directory=path, kek=_hkdf(ikm, _KEK_INFO), demo=demo)

    @staticmethod
    def _initialise(meta_path: Path, secret: str, scrypt_n: int) -> None:
        if isinstance(scrypt_n, bool) or not isinstance(scrypt_n, int) or scrypt_n < 2:
            raise KeystoreError(f"scrypt_n must be a power of two >= 2, got {scrypt_n!r}")
        if scrypt_n & (scrypt_n - 1) or scrypt_n > _MAX_SCRYPT_N:
            raise KeystoreError(f"scrypt_n must be a power of two <= {_MAX_SCRYPT_N}, got {scrypt_n}")
        salt = secrets.token_bytes(_SALT_SIZE)
        ikm = Scrypt(salt=salt, length=32, n=scrypt_n, r=_SCRYPT_R, p=_SCRYPT_P).derive(secret.encode("utf-8"))
        meta = {
            "format": _FORMAT,
            "kdf": "scrypt",
            "salt": salt.hex(),
            "n": scrypt_n,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
            "verifier": _hkdf(ikm, _VERIFIER_INFO).hex(),
        }
        # Losing a creation race is fine: the other process's keystore.json wins and is read back.
        with contextlib.suppress(FileExistsError):
            _write_new_file(meta_path, (json.dumps(meta, indent=2) + "\n").encode())

    @staticmethod
    def _read_meta(meta_path: Path) -> _Meta:
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
            if raw.get("format") != _FORMAT or raw.get("kdf") != "scrypt":
                raise KeystoreError(f"{meta_path}: unsupported keystore format or KDF")
            meta = _Meta(
                salt=bytes.fromhex(raw["salt"]),
                n=int(raw["n"]),
                r=int(raw["r"]),
                p=int(raw["p"]),
                verifier=bytes.fromhex(raw["verifier"]),
            )
        except KeystoreError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeystoreError(f"{meta_path} is unreadable or corrupt: {exc}") from None
        if (
            meta.n < 2
            or meta.n & (meta.n - 1)
            or meta.n > _MAX_SCRYPT_N
            or not 1 <= meta.r <= 32
            or not 1 <= meta.p <= 16
        ):
            raise KeystoreError(f"{meta_path}: scrypt parameters out of range")
        if len(meta.salt) < _SALT_SIZE or len(meta.verifier) != 32:
            raise KeystoreError(f"{meta_path}: salt or verifier has the wrong size")
        return meta

    # -- sealed files ---------------------------------------------------------------------------------

    @staticmethod
    def _ad(kind: str, org_id: str, key_index: int) -> bytes:
        return (
            _AD_DOMAIN
            + lp8_text(kind, "kind", KeystoreError)
            + lp8_text(org_id, "org_id", KeystoreError)
            + uint(key_index, 4, "key_index", KeystoreError)
        )

    def _seal(self, payload: bytes, ad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_SIZE)
        return _FILE_MAGIC + nonce + self._aead.encrypt(nonce, payload, ad)

    def _unseal(self, path: Path, ad: bytes) -> bytes:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise KeystoreError(f"cannot read {path}: {exc.strerror}") from None
        if data[: len(_FILE_MAGIC)] != _FILE_MAGIC or len(data) < len(_FILE_MAGIC) + _NONCE_SIZE + 16:
            raise KeystoreError(f"{path} is not a sealed keystore file")
        nonce = data[len(_FILE_MAGIC) : len(_FILE_MAGIC) + _NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, data[len(_FILE_MAGIC) + _NONCE_SIZE :], ad)
        except InvalidTag:
            raise KeystoreError(
                f"{path} fails authentication: it was altered, moved from another slot, "
                "or written under another master secret"
            ) from None

    # -- organisation keys ----------------------------------------------------------------------------

    @staticmethod
    def _org_dirname(org_id: str) -> str:
        # Hex of the UTF-8 id: safe on every filesystem and case-insensitive ones cannot merge two orgs.
        return lp8_text(org_id, "org_id", KeystoreError)[1:].hex()

    def _org_dir(self, org_id: str) -> Path:
        return self._dir / _ORGS_DIR / self._org_dirname(org_id)

    def _indexes(self, org_id: str) -> list[int]:
        try:
            names = os.listdir(self._org_dir(org_id))
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for name in names if (m := _KEY_FILE.match(name)))

    def _store(self, org_id: str, private_key: bytes, key_index: int | None) -> int:
        orgs = self._dir / _ORGS_DIR
        _ensure_dir(orgs)
        _ensure_dir(self._org_dir(org_id))
        for _ in range(_MAX_RACE_RETRIES):
            indexes = self._indexes(org_id)
            index = key_index if key_index is not None else (indexes[-1] + 1 if indexes else 0)
            if index > _MAX_KEY_INDEX:
                raise KeystoreError(f"organisation {org_id!r} has no key index left")
            sealed = self._seal(private_key, self._ad("org-key", org_id, index))
            try:
                _write_new_file(self._org_dir(org_id) / f"{index:010d}.key", sealed)
            except FileExistsError:
                if key_index is not None:
                    raise KeystoreError(f"organisation {org_id!r} already has key index {index}") from None
                continue  # a concurrent rotation took this index; take the next one
            self._cache[(org_id, index)] = private_key
            self._create_record_id_key(org_id, secrets.token_bytes(RECORD_ID_KEY_SIZE))
            return index
        raise KeystoreError(f"could not allocate a key index for {org_id!r}: too many concurrent rotations")

    def generate(self, org_id: str, suite: hpke.HpkeSuite = hpke.HpkeSuite.X25519) -> tuple[int, bytes]:
        """Create a new key for ``org_id`` at the next index; returns ``(key_index, kem_id || public key)``."""
        private_key, public_key = hpke.generate_keypair(suite)
        return self._store(org_id, private_key, None), public_key

    def import_key(self, org_id: str, private_key: bytes, *, key_index: int | None = None) -> tuple[int, bytes]:
        """Store an existing encoded private key (``kem_id || secret``) at ``key_index`` or the next index."""
        if key_index is not None:
            uint(key_index, 4, "key_index", KeystoreError)
        try:
            public_key = hpke.public_key_from_private(bytes(private_key))
        except HpkeError as exc:
            raise KeystoreError(f"cannot import a key for {org_id!r}: {exc}") from None
        return self._store(org_id, bytes(private_key), key_index), public_key

    def private_key(self, org_id: str, key_index: int) -> bytes:
        """The encoded private key (``kem_id || secret``) at ``key_index`` of ``org_id``."""
        cached = self._cache.get((org_id, key_index))
        if cached is not None:
            return cached
        uint(key_index, 4, "key_index", KeystoreError)
        path = self._org_dir(org_id) / f"{key_index:010d}.key"
        try:
            private_key = self._unseal(path, self._ad("org-key", org_id, key_index))
        except FileNotFoundError:
            held = self._indexes(org_id)
            detail = f"it holds indexes {held}" if held else "it holds no keys for that organisation"
            raise KeystoreError(f"the keystore has no key {key_index} for {org_id!r}: {detail}") from None
        try:
            hpke.decode_private_key(private_key)
        except HpkeError as exc:
            raise KeystoreError(f"{path} holds an invalid key: {exc}") from None
        self._cache[(org_id, key_index)] = private_key
        return private_key

    def public_keys(self, org_id: str) -> dict[int, bytes]:
        """Every key index of ``org_id`` with its encoded public key (``kem_id || pk``)."""
        indexes = self._indexes(org_id)
        if not indexes:
            raise KeystoreError(f"the keystore holds no keys for {org_id!r}")
        return {index: hpke.public_key_from_private(self.private_key(org_id, index)) for index in indexes}

    def current(self, org_id: str) -> tuple[int, bytes]:
        """The newest key of ``org_id``: ``(key_index, kem_id || public key)``."""
        indexes = self._indexes(org_id)
        if not indexes:
            raise KeystoreError(f"the keystore holds no keys for {org_id!r}")
        return indexes[-1], hpke.public_key_from_private(self.private_key(org_id, indexes[-1]))

    def org_ids(self) -> list[str]:
        """Organisations that have at least one key here."""
        try:
            names = os.listdir(self._dir / _ORGS_DIR)
        except FileNotFoundError:
            return []
        orgs = []
        for name in names:
            try:
                org_id = bytes.fromhex(name).decode("utf-8")
            except ValueError:
                continue
            if self._indexes(org_id):
                orgs.append(org_id)
        return sorted(orgs)

    # -- record-id keys -------------------------------------------------------------------------------

    def _create_record_id_key(self, org_id: str, key: bytes) -> bool:
        """Seal ``key`` as ``org_id``'s record-id key unless it has one; True when this call created it."""
        try:
            _write_new_file(self._org_dir(org_id) / _RECORD_ID_KEY_NAME, self._seal(key, self._record_id_ad(org_id)))
        except FileExistsError:  # kept: the key of an organisation never changes
            return False
        return True

    def _record_id_ad(self, org_id: str) -> bytes:
        return self._ad("record-id-key", org_id, 0)

    def import_record_id_key(self, org_id: str, key: bytes) -> None:
        """Store ``key`` as the record-id key of ``org_id`` (restoring one, or the demo's fixed key).

        Before the organisation's first HPKE key, which would otherwise create a random one. Importing the
        key it already has is a no-op; another key is refused: the records stored under the first keep
        their ids."""
        if len(key) != RECORD_ID_KEY_SIZE:
            raise KeystoreError(f"a record-id key has {RECORD_ID_KEY_SIZE} bytes, got {len(key)}")
        _ensure_dir(self._dir / _ORGS_DIR)
        _ensure_dir(self._org_dir(org_id))
        if not self._create_record_id_key(org_id, bytes(key)) and not hmac.compare_digest(
            self._read_record_id_key(org_id), key
        ):
            raise KeystoreError(f"organisation {org_id!r} already has another record-id key")

    def _read_record_id_key(self, org_id: str) -> bytes:
        path = self._org_dir(org_id) / _RECORD_ID_KEY_NAME
        key = self._unseal(path, self._record_id_ad(org_id))
        if len(key) != RECORD_ID_KEY_SIZE:
            raise KeystoreError(f"{path} holds {len(key)} bytes, expected {RECORD_ID_KEY_SIZE}")
        return key

    def record_id_key(self, org_id: str) -> bytes:
        """The 32-byte key ``org_id``'s record ids are derived under (it never leaves the keystore but to
        :func:`adapters.canonical.derive_record_id`, in the owner's gateway).

        An organisation enrolled before record ids were keyed gets its key here, on first use. The demo's
        published key (:func:`demo_record_id_key`) is refused unless the keystore was opened in demo mode."""
        key = self._record_id_keys.get(org_id)
        if key is None:
            if not self._indexes(org_id):
                raise KeystoreError(f"the keystore holds no keys for {org_id!r}")
            self._create_record_id_key(org_id, secrets.token_bytes(RECORD_ID_KEY_SIZE))
            key = self._read_record_id_key(org_id)
            self._record_id_keys[org_id] = key
        if not self._demo and hmac.compare_digest(key, demo_record_id_key(org_id)):
            raise InsecureSecretError(
                f"the record-id key of {org_id!r} is the published demo key: anyone could test guessed native ids "
                "against its record ids (run in demo mode, or enrol the organisation anew)"
            )
        return key

    # -- consortium secret ----------------------------------------------------------------------------

    def consortium_key(self) -> bytes:
        """The consortium's 32-byte blind-index secret, created on first use and never changed."""
        if self._consortium is not None:
            return self._consortium
        path = self._dir / _CONSORTIUM_NAME
        ad = self._ad("consortium", "-", 0)
        if not path.exists():
            with contextlib.suppress(FileExistsError):  # a concurrent creator won: read its key below
                _write_new_file(path, self._seal(secrets.token_bytes(CONSORTIUM_KEY_SIZE), ad))
        key = self._unseal(path, ad)
        if len(key) != CONSORTIUM_KEY_SIZE:
            raise KeystoreError(f"{path} holds {len(key)} bytes, expected {CONSORTIUM_KEY_SIZE}")
        self._consortium = key
        return key
