"""The organisation keystore: sealing at rest, wrong secrets, file modes, atomic writes, rotation, demo refusal."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from ledger_api.crypto.envelope import RecipientKey, open_record, seal_record
from ledger_api.crypto.errors import InsecureSecretError, KeystoreError, WrongMasterSecretError
from ledger_api.crypto.hpke import HpkeSuite, generate_keypair, public_key_from_private
from ledger_api.crypto.keystore import (
    DEMO_MASTER_SECRET,
    MIN_SECRET_LENGTH,
    OrgKeystore,
    demo_record_id_key,
    require_real_secret,
)
from ledger_api.errors import ConfigurationError

SECRET = "correct horse battery staple 2024"
FAST = 2**4  # scrypt cost for tests only; production uses DEFAULT_SCRYPT_N


def _open(directory: Path, secret: str = SECRET) -> OrgKeystore:
    return OrgKeystore.open(directory, master_secret=secret, scrypt_n=FAST)


def _all_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*"))


def test_generate_reopen_and_read_back(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    index, public_key = store.generate("police-001")
    hybrid_index, hybrid_public = store.generate("committee-007", HpkeSuite.MLKEM768_X25519)
    assert (index, hybrid_index) == (0, 0)
    assert public_key[:2] == b"\x00\x20"
    assert hybrid_public[:2] == b"\x64\x7a"

    reopened = _open(tmp_path / "keys")
    assert public_key_from_private(reopened.private_key("police-001", 0)) == public_key
    assert reopened.current("committee-007") == (0, hybrid_public)
    assert reopened.public_keys("police-001") == {0: public_key}
    assert reopened.org_ids() == ["committee-007", "police-001"]


def test_wrong_master_secret_is_one_clear_error(tmp_path: Path) -> None:
    _open(tmp_path / "keys").generate("police-001")
    with pytest.raises(WrongMasterSecretError, match="master secret does not open the keystore at") as caught:
        _open(tmp_path / "keys", secret=SECRET + "!")
    assert isinstance(caught.value, KeystoreError)


def test_files_are_private_and_sealed(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    store.generate("police-001")
    store.generate("police-001", HpkeSuite.MLKEM768_X25519)
    consortium = store.consortium_key()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    secrets_on_disk = [store.private_key("police-001", 0)[2:], store.private_key("police-001", 1)[2:], consortium]
    for path in _all_files(tmp_path / "keys"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
            continue
        assert mode == 0o600, path
        content = path.read_bytes()
        for secret in secrets_on_disk:
            assert secret not in content, f"{path} holds a secret in clear"
        assert SECRET.encode() not in content


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    for _ in range(3):
        store.generate("police-001")
    store.consortium_key()
    names = [path.name for path in _all_files(tmp_path / "keys")]
    assert not [name for name in names if name.startswith(".") or name.endswith(".tmp")]


def test_a_failed_write_leaves_neither_temp_nor_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _open(tmp_path / "keys")
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(5, "simulated I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        store.generate("police-001")
    monkeypatch.undo()
    assert [path.name for path in _all_files(tmp_path / "keys") if path.is_file()] == ["keystore.json"]
    with pytest.raises(KeystoreError, match="holds no keys"):
        store.current("police-001")
    assert store.generate("police-001")[0] == 0


def test_rotation_keeps_old_keys_readable(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    index0, public0 = store.generate("police-001")
    sealed = seal_record(
        plaintext=b"sealed before rotation",
        record_id="rec-1",
        owner_org="police-001",
        record_type="incident",
        version=1,
        recipients={"police-001": RecipientKey(org_id="police-001", key_index=index0, public_key=public0)},
    )
    index1, public1 = store.generate("police-001", HpkeSuite.MLKEM768_X25519)
    assert index1 == 1
    assert store.current("police-001") == (1, public1)
    assert store.public_keys("police-001") == {0: public0, 1: public1}
    reopened = _open(tmp_path / "keys")
    opened = open_record(
        sealed.blob, org_id="police-001", key_index=0, private_key=reopened.private_key("police-001", 0)
    )
    assert opened.plaintext == b"sealed before rotation"


def test_concurrent_rotations_get_distinct_indexes(tmp_path: Path) -> None:
    _open(tmp_path / "keys")
    stores = [_open(tmp_path / "keys") for _ in range(4)]
    results: list[int] = []
    lock = threading.Lock()

    def rotate(store: OrgKeystore) -> None:
        for _ in range(5):
            index, _ = store.generate("police-001")
            with lock:
                results.append(index)

    threads = [threading.Thread(target=rotate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(20))
    assert sorted(_open(tmp_path / "keys").public_keys("police-001")) == list(range(20))


def test_unknown_orgs_and_indexes(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    with pytest.raises(KeystoreError, match="holds no keys for 'nobody'"):
        store.current("nobody")
    with pytest.raises(KeystoreError, match="holds no keys for 'nobody'"):
        store.public_keys("nobody")
    store.generate("police-001")
    with pytest.raises(KeystoreError, match=r"no key 5 for 'police-001': it holds indexes \[0\]"):
        store.private_key("police-001", 5)


def test_import_key(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    private_key, public_key = generate_keypair(HpkeSuite.MLKEM768_X25519)
    assert store.import_key("committee-007", private_key, key_index=3) == (3, public_key)
    assert store.private_key("committee-007", 3) == private_key
    with pytest.raises(KeystoreError, match="already has key index 3"):
        store.import_key("committee-007", private_key, key_index=3)
    with pytest.raises(KeystoreError, match="cannot import"):
        store.import_key("committee-007", b"\x00\x20" + b"short")
    assert store.generate("committee-007")[0] == 4


def test_swapped_or_altered_files_fail_authentication(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    store.generate("police-001")
    store.generate("property-042")
    orgs = tmp_path / "keys" / "orgs"
    police = orgs / b"police-001".hex() / "0000000000.key"
    prop = orgs / b"property-042".hex() / "0000000000.key"
    prop.unlink()
    prop.write_bytes(police.read_bytes())  # police's key file planted as property's
    with pytest.raises(KeystoreError, match="fails authentication"):
        _open(tmp_path / "keys").private_key("property-042", 0)
    altered = bytearray(police.read_bytes())
    altered[-1] ^= 1
    police.unlink()
    police.write_bytes(bytes(altered))
    with pytest.raises(KeystoreError, match="fails authentication"):
        _open(tmp_path / "keys").private_key("police-001", 0)


def test_consortium_key_is_created_once(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    key = store.consortium_key()
    assert len(key) == 32
    assert store.consortium_key() == key
    assert _open(tmp_path / "keys").consortium_key() == key
    assert (tmp_path / "keys" / "consortium.key").exists()


def test_tampered_metadata_is_refused(tmp_path: Path) -> None:
    _open(tmp_path / "keys")
    meta_path = tmp_path / "keys" / "keystore.json"
    meta = json.loads(meta_path.read_text())
    meta["n"] = 2**30
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(KeystoreError, match="scrypt parameters out of range"):
        _open(tmp_path / "keys")
    meta_path.write_text("{not json")
    with pytest.raises(KeystoreError, match="unreadable or corrupt"):
        _open(tmp_path / "keys")


def test_keystore_path_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(KeystoreError, match="not a directory"):
        _open(tmp_path / "file")


# -- master secrets -----------------------------------------------------------------------------------


def test_demo_secret_is_refused_outside_demo_mode(tmp_path: Path) -> None:
    with pytest.raises(InsecureSecretError, match="demo placeholder") as caught:
        require_real_secret(DEMO_MASTER_SECRET, demo=False)
    assert isinstance(caught.value, ConfigurationError)
    assert isinstance(caught.value, KeystoreError)
    assert require_real_secret(DEMO_MASTER_SECRET, demo=True) == DEMO_MASTER_SECRET
    with pytest.raises(InsecureSecretError, match="demo placeholder"):
        OrgKeystore.open(tmp_path / "keys", master_secret=DEMO_MASTER_SECRET, scrypt_n=FAST)
    assert not (tmp_path / "keys").exists()
    store = OrgKeystore.open(tmp_path / "keys", master_secret=DEMO_MASTER_SECRET, demo=True, scrypt_n=FAST)
    assert store.generate("police-001")[0] == 0


@pytest.mark.parametrize("secret", ["", "   ", None])
def test_empty_secrets_are_always_refused(secret: str | None) -> None:
    for demo in (False, True):
        with pytest.raises(InsecureSecretError, match="empty"):
            require_real_secret(secret, demo=demo)


def test_short_secrets_are_refused_outside_demo_mode() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    with pytest.raises(InsecureSecretError, match=f"at least {MIN_SECRET_LENGTH}"):
        require_real_secret(short, demo=False)
    assert require_real_secret(short, demo=True) == short
    assert require_real_secret(SECRET, demo=False) == SECRET


def test_default_scrypt_cost_is_used_when_creating(tmp_path: Path) -> None:
    OrgKeystore.open(tmp_path / "keys", master_secret=SECRET)
    meta = json.loads((tmp_path / "keys" / "keystore.json").read_text())
    assert (meta["kdf"], meta["n"], meta["r"], meta["p"]) == ("scrypt", 2**15, 8, 1)


# --- record-id keys (DESIGN.md, Privacy: record ids are keyed under a secret of the owner) ---------------------


def test_each_organisation_gets_a_record_id_key_with_its_first_key(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    with pytest.raises(KeystoreError, match="holds no keys"):
        store.record_id_key("police-001")
    store.generate("police-001")
    store.generate("committee-007")
    key = store.record_id_key("police-001")
    assert len(key) == 32
    assert key != store.record_id_key("committee-007")
    assert (store.directory / "orgs" / b"police-001".hex() / "record-id.key").is_file()
    # Rotation keeps it (a new key would give the organisation's records new ids).
    store.generate("police-001")
    assert store.record_id_key("police-001") == key
    assert store.org_ids() == ["committee-007", "police-001"]  # not taken for an HPKE key


def test_the_record_id_key_survives_a_restart_and_a_backup_and_is_sealed(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    store.generate("police-001")
    key = store.record_id_key("police-001")
    assert _open(tmp_path / "keys").record_id_key("police-001") == key
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "keys", backup)
    assert _open(backup).record_id_key("police-001") == key
    files = [path for path in _all_files(tmp_path / "keys") if path.is_file()]
    assert [path for path in files if key in path.read_bytes() or key.hex().encode() in path.read_bytes()] == []
    with pytest.raises(WrongMasterSecretError):
        _open(backup, secret=SECRET + "!")


def test_an_organisation_enrolled_before_keyed_ids_gets_its_key_on_first_use(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    store.generate("police-001")
    (store.directory / "orgs" / b"police-001".hex() / "record-id.key").unlink()  # as an older keystore was
    key = _open(tmp_path / "keys").record_id_key("police-001")
    assert _open(tmp_path / "keys").record_id_key("police-001") == key


def test_importing_a_record_id_key_keeps_the_first(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    wanted = bytes(range(32))
    store.import_record_id_key("police-001", wanted)
    store.generate("police-001")
    assert store.record_id_key("police-001") == wanted
    store.import_record_id_key("police-001", wanted)  # the same key again: nothing to do
    with pytest.raises(KeystoreError, match="already has another record-id key"):
        store.import_record_id_key("police-001", bytes(32))
    with pytest.raises(KeystoreError, match="32 bytes"):
        store.import_record_id_key("police-002", b"short")


def test_the_demo_record_id_key_is_refused_outside_demo_mode(tmp_path: Path) -> None:
    store = _open(tmp_path / "keys")
    store.import_record_id_key("PS-XIHU-01", demo_record_id_key("PS-XIHU-01"))
    store.generate("PS-XIHU-01")
    with pytest.raises(InsecureSecretError, match="published demo key") as refused:
        store.record_id_key("PS-XIHU-01")
    assert isinstance(refused.value, ConfigurationError)
    demo = OrgKeystore.open(tmp_path / "keys", master_secret=SECRET, demo=True)
    assert demo.record_id_key("PS-XIHU-01") == demo_record_id_key("PS-XIHU-01")
