"""API keys of department systems: issued by an admin, shown once, stored only as SHA-256.

A key is ``lk_<key id>_<secret>`` with a 256-bit random secret. A plain SHA-256 suffices for storage
(no slow password hash is needed) because the secret is uniformly random and long: guessing it is
as hard as inverting SHA-256. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Table, bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.index.models import ApiKey

KEY_PREFIX = "lk_"


@dataclass(frozen=True, kw_only=True)
class IssuedKey:
    key_id: str
    org_id: str
    token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(engine: Engine, *, org_id: str, label: str = "") -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with Session(engine) as session:
        session.add(
            ApiKey(
                key_id=key_id,
                org_id=org_id,
                secret_sha256=_digest(secret),
                label=label,
                created_at=datetime.now(UTC),
            )
        )
        session.commit()
    return IssuedKey(key_id=key_id, org_id=org_id, token=f"{KEY_PREFIX}{key_id}_{secret}")


def revoke_key(engine: Engine, *, key_id: str) -> bool:
    """Revoke a key; every :class:`RecentKeys` of this process forgets it at once (others within their TTL)."""
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.revoked_at is not None:
            return False
        key.revoked_at = datetime.now(UTC)
        session.add(key)
        session.commit()
    for cache in list(_CACHES):
        cache.forget(key_id)
    return True


def replace_key(engine: Engine, *, org_id: str, label: str) -> IssuedKey:
    """Revoke ``org_id``'s live keys labelled ``label`` and issue a new one: one live key per label.

    Provisioning issues a demo key at every start; before, each start left the earlier ones live (eleven
    ``ledger run`` starts, eleven keys per organisation, each in some old copy of the keys file).
    """
    with Session(engine) as session:
        live = session.exec(
            select(ApiKey.key_id).where(
                col(ApiKey.org_id) == org_id, col(ApiKey.label) == label, col(ApiKey.revoked_at).is_(None)
            )
        ).all()
    for key_id in live:
        revoke_key(engine, key_id=key_id)
    return issue_key(engine, org_id=org_id, label=label)


def list_keys(engine: Engine) -> list[ApiKey]:
    with Session(engine) as session:
        return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))).all())


_API_KEYS: Table = ApiKey.__table__  # type: ignore[attr-defined]
_KEY_BY_ID = sa_select(_API_KEYS.c.org_id, _API_KEYS.c.secret_sha256, _API_KEYS.c.revoked_at).where(
    _API_KEYS.c.key_id == bindparam("key_id")
)


def organisation_for_token(engine: Engine, token: str) -> str | None:
    """The organisation a valid, unrevoked token belongs to, else None."""
    if not token.startswith(KEY_PREFIX) or token.count("_") < 2:
        return None
    key_id, _, secret = token[len(KEY_PREFIX) :].partition("_")
    # Every request passes here: a Core query of three columns, not an ORM load (a few times cheaper).
    with engine.connect() as connection:
        key = connection.execute(_KEY_BY_ID, {"key_id": key_id}).first()
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_sha256, _digest(secret)):
        return None
    return str(key.org_id)


class RecentKeys:
    """Tokens recently found valid, kept for ``ttl_s`` (thread-safe, bounded).

    Why: looking a key up costs a database round trip and a worker-thread hop on every request, about a
    third of a logged read's time on a 2-core gateway. The price is that ``ledger apikey revoke`` run by
    another process (into the database) takes effect within ``ttl_s`` (at most ``settings.MAX_API_KEY_CACHE_S``)
    rather than at once; a revocation in this process (:func:`revoke_key`) is forgotten by every cache
    here at once, and unknown or revoked tokens are never cached, so a new key works at once.
    """

    def __init__(self, *, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        _CACHES.add(self)

    def forget(self, key_id: str) -> None:
        """Drop every cached token of ``key_id`` (it was just revoked)."""
        prefix = f"{KEY_PREFIX}{key_id}_"
        with self._lock:
            for token in [t for t in self._entries if t.startswith(prefix)]:
                del self._entries[token]

    def get(self, token: str) -> str | None:
        if self._ttl_s <= 0:
            return None
        with self._lock:
            found = self._entries.get(token)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, token: str, org_id: str) -> None:
        if self._ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # crude but bounded; entries are cheap to look up again
            self._entries[token] = (org_id, time.monotonic() + self._ttl_s)


_CACHES: weakref.WeakSet[RecentKeys] = weakref.WeakSet()
