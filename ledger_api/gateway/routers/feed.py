"""``GET /v1/feed``: Server-Sent Events announcing records as they become anchored.

Each event is the metadata of one record version the caller may see (its own, or covered by a grant
active as the chain holds grants when the event is sent), never its content. Events are sent per
anchored batch; the ``id`` of an event is the cursor to resume from (``Last-Event-ID`` or ``?after=``).

The cursor is a watermark over batch ids: every batch with an id at or below it was sent (or was not
anchored by the time the stream gave up waiting for it, see ``_STALL_S``). Batches are anchored in
roughly, not exactly, the order of their ids (one signer per owner), so a stream also remembers the
batches above the watermark it already sent; a client resuming from the watermark may see those again
(at-least-once: deduplicate by record id and version).

The owner of a record is also told at once of every emergency read of it (DESIGN.md, Privacy:
break-glass reads are bounded, the owner told at once): an ``emergency-read`` event per such access
entry, sent as soon as the entry is committed (before it is anchored). Those events follow a second
cursor, a leaf index of the access log: the event id is then ``<batch cursor>:<entry cursor>``. A
cursor of the batch alone resumes emergency events from the start of the log; no cursor at all, from
its end.

Clients that ask for ``text/event-stream`` (``EventSource`` does) get a live stream with ``: keep-alive``
comments every ~15 s until they disconnect. Any other client gets the events available now after the
cursor and the answer ends (a poll: call again with the last id).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlmodel import Session, col, func, select
from starlette.concurrency import run_in_threadpool

from ledger_api.accesslog.entry import format_time
from ledger_api.chain.errors import ChainViewBehind
from ledger_api.chain.follower import ChainFollower
from ledger_api.gateway.deps import CurrentFollower, CurrentOrg, Services, require_current_follower
from ledger_api.gateway.problems import problem_responses
from ledger_api.gateway.routers.review import emergency_entries
from ledger_api.gateway.services import GatewayServices
from ledger_api.gateway.visibility import visible_records_filter
from ledger_api.index.models import AnchorBatch, RecordVersion

router = APIRouter(tags=["records"])

EVENT_STREAM = "text/event-stream"
POLL_S = 0.2
KEEP_ALIVE_S = 15.0
#: A batch below the newest anchored one that stays unanchored this long no longer holds the watermark back.
_STALL_S = 600.0
_BATCHES_PER_POLL = 200
_MAX_ID = 2**63 - 1

_RECORD_EVENT = {
    "type": "object",
    "required": ["record_id", "version", "owner_org", "record_type", "community_code", "occurred_at"],
    "properties": {
        "record_id": {"type": "string"},
        "version": {"type": "integer"},
        "owner_org": {"type": "string"},
        "record_type": {"type": "string"},
        "community_code": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "block_number": {"type": ["integer", "null"]},
        "batch_id": {"type": ["integer", "null"]},
    },
}
_EMERGENCY_EVENT = {
    "type": "object",
    "required": ["entry_index", "accessor_org", "record_id", "version", "owner_org", "time", "request_id"],
    "properties": {
        "entry_index": {"type": "integer"},
        "accessor_org": {"type": "string"},
        "record_id": {"type": "string"},
        "version": {"type": "integer"},
        "owner_org": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "request_id": {"type": "string"},
        "reason_class": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
        "incident_ref": {"type": ["string", "null"]},
    },
}
#: One Server-Sent Event (its fields once parsed): `record` events carry a record's metadata as JSON,
#: `emergency-read` events an emergency read of one of the caller's records.
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["record", "emergency-read"]},
        "id": {"type": "string", "description": "The cursor to resume from (Last-Event-ID)"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"oneOf": [_RECORD_EVENT, _EMERGENCY_EVENT]},
        },
    },
}
_EMERGENCY_PER_POLL = 200
#: ``<batch cursor>`` or ``<batch cursor>:<entry cursor>`` (-1: no entry yet).
_EVENT_ID = r"^[0-9]{1,18}(:(-1|[0-9]{1,18}))?$"


class _Cursor:
    """Watermark over batch ids, plus the anchored batches above it already sent."""

    def __init__(self, after: int, *, after_entry: int) -> None:
        self.watermark = after
        self.sent: set[int] = set()
        self.waiting_since: dict[int, float] = {}
        self.entry_watermark = after_entry
        """Leaf index of the access log up to which emergency reads were looked at (-1: none yet)."""

    @property
    def event_id(self) -> str:
        return f"{self.watermark}:{self.entry_watermark}"

    def advance(self, services: GatewayServices) -> None:
        """Raise the watermark over sent batches and (after ``_STALL_S``) batches that never got anchored."""
        if not self.sent:
            return
        top = max(self.sent)
        with Session(services.engine) as session:
            unanchored = set(
                session.exec(
                    select(AnchorBatch.id).where(
                        col(AnchorBatch.id) > self.watermark,
                        col(AnchorBatch.id) < top,
                        col(AnchorBatch.state) != "anchored",
                    )
                ).all()
            )
        now = time.monotonic()
        for batch_id in unanchored:
            self.waiting_since.setdefault(batch_id, now)  # type: ignore[arg-type]
        holding = [b for b in unanchored if b is not None and now - self.waiting_since[b] < _STALL_S]
        limit = min(holding) - 1 if holding else top
        self.watermark = max(self.watermark, limit)
        self.sent = {b for b in self.sent if b > self.watermark}
        self.waiting_since = {b: t for b, t in self.waiting_since.items() if b > self.watermark}


def _poll(services: GatewayServices, org_id: str, cursor: _Cursor) -> list[str]:
    """Events for the anchored batches above the cursor not sent yet, as SSE text; advances the cursor.

    Raises :class:`ChainViewBehind` when the chain follower lags the node beyond its bound: visibility is
    decided from its view, so a live stream checks it before every poll, not only when it opens."""
    follower = require_current_follower(services)
    events = _emergency_events(services, org_id, cursor) + _record_events(services, org_id, follower, cursor)
    if not events:
        return [f"id: {cursor.event_id}\n\n"]  # moves the client's cursor; no event is dispatched
    # The cursor only on the last event of a poll: resuming never skips an event not yet received.
    events[-1] = events[-1].replace("\ndata: ", f"\nid: {cursor.event_id}\ndata: ", 1)
    return events


def _emergency_events(services: GatewayServices, org_id: str, cursor: _Cursor) -> list[str]:
    """An event per emergency read of a record ``org_id`` owns, committed after the entry cursor."""
    upto = services.access_log.size - 1  # every entry below the size is committed: none is skipped
    if upto <= cursor.entry_watermark:
        return []
    found, more = emergency_entries(
        services, org_id, review_all=False, after=cursor.entry_watermark, limit=_EMERGENCY_PER_POLL, upto=upto
    )
    cursor.entry_watermark = more if more is not None else upto
    events = []
    for seq, entry in found:
        document = {
            "entry_index": seq, "accessor_org": entry.accessor_org, "record_id": entry.record_id,
            "version": entry.version, "owner_org": entry.owner_org, "time": format_time(entry.time),
            "request_id": entry.request_id, "reason_class": entry.reason_class, "reason": entry.reason,
            "incident_ref": entry.incident_ref,
        }  # fmt: skip
        events.append(
            f"event: emergency-read\ndata: {json.dumps(document, ensure_ascii=False, separators=(',', ':'))}\n\n"
        )
    return events


def _record_events(services: GatewayServices, org_id: str, follower: ChainFollower, cursor: _Cursor) -> list[str]:
    """An event per record version ``org_id`` may see in the anchored batches above the batch cursor."""
    with Session(services.engine) as session:
        batches = session.exec(
            select(AnchorBatch.id, AnchorBatch.block_number)
            .where(col(AnchorBatch.id) > cursor.watermark, col(AnchorBatch.state) == "anchored")
            .where(col(AnchorBatch.id).not_in(cursor.sent) if cursor.sent else col(AnchorBatch.id) > cursor.watermark)
            .order_by(col(AnchorBatch.id))
            .limit(_BATCHES_PER_POLL)
        ).all()
        if not batches:
            return []
        blocks = {batch_id: block for batch_id, block in batches}
        # Visibility as the chain holds grants now, i.e. when the event is sent.
        rows = session.exec(
            select(RecordVersion)
            .where(col(RecordVersion.batch_id).in_(list(blocks)))
            .where(visible_records_filter(org_id, follower))
            .order_by(col(RecordVersion.batch_id), col(RecordVersion.leaf_index))
        ).all()
    cursor.sent.update(b for b in blocks if b is not None)
    cursor.advance(services)
    events: list[str] = []
    for record in rows:
        document = {
            "record_id": record.record_id,
            "version": record.version,
            "owner_org": record.owner_org,
            "record_type": record.record_type,
            "community_code": record.community_code,
            "occurred_at": record.occurred_at.isoformat(),
            "block_number": blocks.get(record.batch_id),
            "batch_id": record.batch_id,
        }
        events.append(f"event: record\ndata: {json.dumps(document, ensure_ascii=False, separators=(',', ':'))}\n\n")
    return events


def _start(services: GatewayServices) -> int:
    """Just below the oldest batch not anchored yet (else the newest batch): nothing anchored later is missed."""
    with Session(services.engine) as session:
        waiting = session.exec(select(func.min(AnchorBatch.id)).where(col(AnchorBatch.state) != "anchored")).one()
        if waiting is not None:
            return int(waiting) - 1
        return int(session.exec(select(func.max(AnchorBatch.id))).one() or 0)


async def _live(request: Request, services: GatewayServices, org_id: str, cursor: _Cursor) -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    last_sent = time.monotonic()
    while not await request.is_disconnected():
        try:
            events = await run_in_threadpool(_poll, services, org_id, cursor)
        except ChainViewBehind as exc:
            # Too late for a status: end the stream saying why; the client's reconnection gets the 503.
            yield ": " + " ".join(str(exc).splitlines()) + "\n\n"
            return
        for event in events:
            yield event
            last_sent = time.monotonic()
        if time.monotonic() - last_sent >= KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_S)


async def _once(services: GatewayServices, org_id: str, cursor: _Cursor) -> AsyncIterator[str]:
    for event in await run_in_threadpool(_poll, services, org_id, cursor):
        yield event


@router.get(
    "/feed",
    response_class=StreamingResponse,
    summary="Server-Sent Events: metadata of records as they become anchored, that the caller may see",
    description="With `Accept: text/event-stream` the stream stays open (`: keep-alive` comments every ~15 s) "
    "until the client disconnects; otherwise the answer holds the events available now and ends. Resume with "
    "the last event id in `Last-Event-ID` or `after` (a batch cursor); without either the stream starts at the newest "
    "batch. The owner of a record also gets an `emergency-read` event for each emergency read of it, at once.",
    responses={
        200: {"description": "An event stream", "content": {EVENT_STREAM: {"schema": _EVENT_SCHEMA}}},
        **problem_responses(401, 422, 503),
    },
)
async def feed(
    request: Request,
    org_id: CurrentOrg,
    services: Services,
    follower: CurrentFollower,
    after: Annotated[int | None, Query(ge=0, le=_MAX_ID, description="Resume after this event id")] = None,
    # Typed `str`, not `str | None`: absent is None all the same, and the document does not offer `null`, which a
    # client sends as the text "null" in a header (schemathesis did).
    last_event_id: Annotated[
        str, Header(alias="Last-Event-ID", pattern=_EVENT_ID, description="Resume after this event id")  # noqa: RUF013
    ] = None,  # type: ignore[assignment]
) -> StreamingResponse:
    del follower  # checked (503 when it lags) before the stream opens; each poll checks it again
    after_entry = -1  # a batch cursor alone: emergency reads from the start of the log
    if last_event_id is not None:
        batch, _, entry = last_event_id.partition(":")
        start, after_entry = int(batch), int(entry) if entry else -1
    elif after is not None:
        start = after
    else:
        start = await run_in_threadpool(_start, services)
        after_entry = services.access_log.size - 1
    cursor = _Cursor(start, after_entry=after_entry)
    live = EVENT_STREAM in request.headers.get("accept", "")
    body = _live(request, services, org_id, cursor) if live else _once(services, org_id, cursor)
    return StreamingResponse(
        body,
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
