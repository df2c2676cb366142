"""The access log (DESIGN.md invariant 4): every read, in one append-only RFC 9162 tree anchored on chain.

* :class:`Entry` — one read: accessor, record version, owner, grant (0 for an emergency read), purpose,
  the block the grant check was evaluated at, time, request id. Leaf data is its canonical JSON.
* :class:`AccessLog` — ``append``/``append_many`` commit entries durably (that commit is the "made
  durable so that it is guaranteed to be anchored" point: release plaintext only after it returned) and
  serve roots, inclusion and consistency proofs from an in-memory tree rebuilt from the table at start.
* :class:`TreeHeadAnchorer` — writes each new stretch of entries to shared storage as a sealed segment,
  then anchors the tree head (size, root) in ``AccessLogAnchors``, exactly like the record outbox:
  durable states, the same signed transaction resent after a crash, the chain decides.
* :mod:`~ledger_api.accesslog.segment` — the sealed segment format (magic ``b"LDAS"``).
* :mod:`~ledger_api.accesslog.audit` — how an auditor finds the segments and rebuilds the anchored log
  without the gateway's database.
"""

from typing import TYPE_CHECKING, Any

from ledger_api.accesslog.audit import LogAudit, SegmentScan, audit_access_log, find_segments, verify_log
from ledger_api.accesslog.entry import ENTRY_FORMAT, AppendedEntry, Entry, format_time
from ledger_api.accesslog.errors import (
    AccessLogCorrupted,
    AccessLogDiverged,
    AccessLogError,
    InvalidEntry,
    MalformedSegment,
    NotASegmentRecipient,
    SegmentError,
    SegmentIntegrityError,
)
from ledger_api.accesslog.segment import (
    SEGMENT_MAGIC,
    OpenedSegment,
    SegmentHeader,
    is_segment,
    open_segment,
    parse_segment,
    seal_segment,
)
from ledger_api.chain.tree_heads import ChainTreeHead, Preflight, TreeHeadReader, TreeHeadWriter, auditor_recipients

if TYPE_CHECKING:
    from ledger_api.accesslog.anchorer import AnchorerStatus, TreeHeadAnchorer, TreeHeadSettings, anchored_heads
    from ledger_api.accesslog.log import AccessLog

# The gateway's side of the log (the durable table and its anchorer) is loaded on first use (PEP 562), so
# that an auditor importing ``ledger_api.accesslog.audit`` never loads the gateway's index modules.
_GATEWAY_SIDE = {
    "AccessLog": "ledger_api.accesslog.log",
    "AnchorerStatus": "ledger_api.accesslog.anchorer",
    "TreeHeadAnchorer": "ledger_api.accesslog.anchorer",
    "TreeHeadSettings": "ledger_api.accesslog.anchorer",
    "anchored_heads": "ledger_api.accesslog.anchorer",
}


def __getattr__(name: str) -> Any:
    module = _GATEWAY_SIDE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ENTRY_FORMAT",
    "SEGMENT_MAGIC",
    "AccessLog",
    "AccessLogCorrupted",
    "AccessLogDiverged",
    "AccessLogError",
    "AnchorerStatus",
    "AppendedEntry",
    "ChainTreeHead",
    "Entry",
    "InvalidEntry",
    "LogAudit",
    "MalformedSegment",
    "NotASegmentRecipient",
    "OpenedSegment",
    "Preflight",
    "SegmentError",
    "SegmentHeader",
    "SegmentIntegrityError",
    "SegmentScan",
    "TreeHeadAnchorer",
    "TreeHeadReader",
    "TreeHeadSettings",
    "TreeHeadWriter",
    "anchored_heads",
    "audit_access_log",
    "auditor_recipients",
    "find_segments",
    "format_time",
    "is_segment",
    "open_segment",
    "parse_segment",
    "seal_segment",
    "verify_log",
]
