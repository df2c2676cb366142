"""The error root of :mod:`ledger_api.audit`: what stops an audit from running at all.

Discrepancies are findings, not errors (they are values in an :class:`~ledger_api.audit.model.AuditResult`);
these errors mean the audit could not be carried out: an unreadable bundle, an unreachable node or store.
"""

from __future__ import annotations

from ledger_api.errors import LedgerError


class AuditError(LedgerError):
    """The audit could not run; ``str(error)`` is one line."""


class BundleUnreadable(AuditError):
    """The bundle file is not a bundle this version can read (not gzip/JSON, unknown format)."""


class SourceUnavailable(AuditError):
    """The chain node or the blob storage could not be read."""
