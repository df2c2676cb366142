"""Index tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Dialect, Index, LargeBinary, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel


class RecordVersion(SQLModel, table=True):
    """One stored version of a record. ``batch_id`` empty means: waiting to be anchored (the outbox)."""

    __tablename__ = "record_versions"
    __table_args__ = (
        UniqueConstraint("record_id", "version", name="uq_record_version"),
        Index("ix_record_versions_pending", "owner_org", "batch_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(max_length=64, index=True)
    version: int
    owner_org: str = Field(max_length=32, index=True)
    record_type: str = Field(max_length=32, index=True)
    community_code: str = Field(max_length=32, index=True)
    occurred_at: datetime = Field(index=True)
    received_at: datetime
    fingerprint: str = Field(max_length=64)
    blob_key: str = Field(max_length=64)
    """SHA-256 of the ciphertext blob: its storage key and its on-chain anchor."""
    commitment: str = Field(max_length=64)
    key_index: int
    """Which of the owner's HPKE keys wrapped the data key."""
    batch_id: int | None = Field(default=None, foreign_key="anchor_batches.id", index=True)
    leaf_index: int | None = None
    shredded_at: datetime | None = None


class AnchorBatch(SQLModel, table=True):
    """A batch of record versions anchored by one RFC 9162 root, and the transaction that anchors it.

    States: ``assigned`` (leaves fixed, nothing signed), ``signed`` (transaction recorded, maybe
    broadcast), ``anchored`` (mined with the wanted confirmations).
    """

    __tablename__ = "anchor_batches"

    id: int | None = Field(default=None, primary_key=True)
    owner_org: str = Field(max_length=32, index=True)
    signer: str = Field(max_length=42, index=True)
    root: str = Field(max_length=64, unique=True)
    size: int
    manifest_key: str = Field(max_length=64)
    state: str = Field(default="assigned", max_length=16, index=True)
    nonce: int | None = None
    tx_hash: str | None = Field(default=None, max_length=66)
    raw_tx: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    fee_level: int | None = None
    block_number: int | None = None
    created_at: datetime
    sent_at: datetime | None = None
    anchored_at: datetime | None = None
    attempts: int = 0


class SubjectLink(SQLModel, table=True):
    """Keyed blind index (HMAC) of an ID number or address → record, for linking without plaintext."""

    __tablename__ = "subject_links"
    __table_args__ = (UniqueConstraint("blind_index", "record_id", name="uq_subject_link"),)

    id: int | None = Field(default=None, primary_key=True)
    blind_index: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)
    record_id: str = Field(max_length=64, index=True)


class ApiKey(SQLModel, table=True):
    """An API key of a department system; only the SHA-256 of its secret is stored."""

    __tablename__ = "api_keys"

    key_id: str = Field(primary_key=True, max_length=16)
    org_id: str = Field(max_length=32, index=True)
    secret_sha256: str = Field(max_length=64)
    label: str = Field(default="", max_length=200)
    created_at: datetime
    revoked_at: datetime | None = None


# --- access log (ledger_api.accesslog) ------------------------------------------------------------------


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is timezone-aware UTC going in and coming out, on SQLite and PostgreSQL alike.

    SQLite keeps no offset: a naive value read back is UTC because only UTC is ever written.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AccessLogEntryRow(SQLModel, table=True):
    """One entry of the access log; ``seq`` is its leaf index in the RFC 9162 tree (unique, gap-free).

    The row is the durable promise of invariant 4: committed before the read it covers is released, and
    anchored later by the tree-head anchorer (``access_log_heads``).
    """

    __tablename__ = "access_log_entries"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """The entry's leaf data: canonical JSON (``ledger_api.accesslog.entry``)."""
    accessor_org: str = Field(max_length=32, index=True)
    record_id: str = Field(max_length=128, index=True)
    request_id: str = Field(max_length=128, index=True)
    appended_at: datetime = Field(sa_type=UtcDateTime)


class AccessLogHeadRow(SQLModel, table=True):
    """A tree head of the access log, its segment in storage, and the transaction that anchors it.

    States: ``assigned`` (size and root fixed; ``segment_key`` set once the segment is stored),
    ``signed`` (transaction recorded, maybe broadcast), ``anchored`` (on chain with the wanted confirmations).
    """

    __tablename__ = "access_log_heads"

    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(unique=True)
    from_index: int
    root: str = Field(max_length=64)
    segment_key: str | None = Field(default=None, max_length=64)
    state: str = Field(default="assigned", max_length=16, index=True)
    signer: str = Field(max_length=42)
    nonce: int | None = None
    tx_hash: str | None = Field(default=None, max_length=66)
    raw_tx: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    fee_level: int | None = None
    head_index: int | None = None
    block_number: int | None = None
    created_at: datetime = Field(sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    anchored_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    attempts: int = 0
