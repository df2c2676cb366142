"""``GET /v1/feed``: Server-Sent Events announcing records as they become anchored.

Each event is the metadata of one record version the caller may see (its own, or covered by a grant
active as the chain holds grants when the event is sent), never its content. Events are sent per
anchored batch; the ``id`` of an event is the cursor to resume from (``Last-Event-ID`` or ``?after=``).

The cursor is a watermark over batch ids: every batch with an id at or below it was sent (or was not
anchored by the time the stream gave up waiting for it, see ``_STALL_S``). Batches are anchored in
roughly, not exactly, the order of their ids (one signer per owner), so a stream also remembers the
batches above the watermark it already sent; a client resuming from the watermark may see those again
(at-least-once: deduplicate by record id and version).

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

from ledger_api.chain.errors import ChainViewBehind
from ledger_api.gateway.deps import CurrentFollower, CurrentOrg, Services, require_current_follower
from ledger_api.gateway.problems import problem_responses
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
#: One Server-Sent Event (its fields once parsed): `record` events carry a record's metadata as JSON.
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["record"]},
        "id": {"type": "string", "description": "The cursor to resume from (Last-Event-ID or after)"},
        "retry": {"type": "integer"},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": _RECORD_EVENT},
    },
}


class _Cursor:
    """Watermark over batch ids, plus the anchored batches above it already sent."""

    def __init__(self, after: int) -> None:
        self.watermark = after
        self.sent: set[int] = set()
        self.waiting_since: dict[int, float] = {}

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
    for position, record in enumerate(rows):
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
        # The cursor only on the last event of a poll: resuming never skips an event not yet received.
        last = position == len(rows) - 1
        events.append(
            "event: record\n"
            + (f"id: {cursor.watermark}\n" if last else "")
            + f"data: {json.dumps(document, ensure_ascii=False, separators=(',', ':'))}\n\n"
        )
    if not rows:
        events.append(f"id: {cursor.watermark}\n\n")  # moves the client's cursor; no event is dispatched
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
    "the last event id in `Last-Event-ID` or `after`; without either the stream starts at the newest batch.",
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
        str, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$", description="Resume after this event id")  # noqa: RUF013
    ] = None,  # type: ignore[assignment]
) -> StreamingResponse:
    del follower  # checked (503 when it lags) before the stream opens; each poll checks it again
    if last_event_id is not None:
        start = int(last_event_id)
    elif after is not None:
        start = after
    else:
        start = await run_in_threadpool(_start, services)
    cursor = _Cursor(start)
    live = EVENT_STREAM in request.headers.get("accept", "")
    body = _live(request, services, org_id, cursor) if live else _once(services, org_id, cursor)
    return StreamingResponse(
        body,
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
