"""Errors of the access log: one root, :class:`AccessLogError`, under :class:`LedgerError`."""

from __future__ import annotations

from ledger_api.errors import LedgerError

__all__ = [
    "AccessLogCorrupted",
    "AccessLogDiverged",
    "AccessLogError",
    "InvalidEntry",
    "MalformedSegment",
    "NotASegmentRecipient",
    "SegmentError",
    "SegmentIntegrityError",
]


class AccessLogError(LedgerError):
    """Root of the errors raised on purpose by :mod:`ledger_api.accesslog`."""


class InvalidEntry(AccessLogError, ValueError):
    """An access entry has a missing or ill-formed field, or leaf data that is not canonical."""


class AccessLogCorrupted(AccessLogError):
    """The entry table has a gap, or a row whose leaf hash does not match its data."""


class AccessLogDiverged(AccessLogError):
    """The chain holds a tree head this log does not reproduce (another writer, or a lost database).

    The anchorer never anchors past such a head: it reports the divergence on every step until a human
    looks at it.
    """


class SegmentError(AccessLogError):
    """A sealed segment could not be sealed, parsed or opened; subclasses say which check failed."""


class MalformedSegment(SegmentError):
    """The bytes are not a well-formed access-log segment (bad magic, version, truncation, trailing bytes…)."""


class NotASegmentRecipient(SegmentError):
    """The segment holds no wrapped data key for the requested organisation and key index."""


class SegmentIntegrityError(SegmentError):
    """The data key does not unwrap, or AES-GCM authentication of the segment failed: it was altered."""
