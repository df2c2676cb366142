"""Door-access events from the smart-community platform: JSON Lines, one event per line.

Native id: event_id. ``occurred_at``: ts. Community: community_code, else a community name looked up in
the context, else the context default. ``room`` ("7-3-2101") becomes building/unit/room; the gate is
the location text. ``person_ref`` is a credential reference, not a person: it stays in attributes
(personal). A line that does not parse is one bad row; the next lines continue.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import JsonAdapter, RowMeta
from adapters.canonical import CanonicalRecord, Location, RecordType, Sensitivity
from adapters.parsing.fields import Field, FieldSet, RowReader
from adapters.parsing.location import split_room_code


class AccessEventsJsonlAdapter(JsonAdapter):
    name: ClassVar[str] = "property.access_events"
    record_type: ClassVar[RecordType] = RecordType.ACCESS_EVENT
    department: ClassVar[str] = "property"
    description: ClassVar[str] = "door-access events: JSON Lines from the smart-community platform"
    sample_file: ClassVar[str | None] = "property/access_events.jsonl"
    layout = "jsonl"
    fields: ClassVar[FieldSet] = FieldSet(
        [
            Field(key="native_id", label="event_id", synonyms=("事件编号", "记录编号", "eventId", "id"), required=True),
            Field(
                key="occurred_at",
                label="ts",
                synonyms=("timestamp", "time", "event_time", "eventTime", "通行时间", "时间"),
                required=True,
            ),
            Field(key="community_code", label="community_code", synonyms=("communityCode", "社区代码", "社区编码")),
            Field(key="community_name", label="community_name", synonyms=("communityName", "社区", "社区名称")),
            Field(key="gate", label="gate", synonyms=("door", "device", "门禁点", "设备名称", "通道")),
            Field(key="credential", label="credential", synonyms=("method", "开门方式", "认证方式")),
            Field(key="person_ref", label="person_ref", synonyms=("personRef", "person", "人员标识", "卡号")),
            Field(key="room", label="room", synonyms=("房号", "房间")),
            Field(key="result", label="result", synonyms=("通行结果", "结果")),
        ]
    )
    sensitivity: ClassVar[dict[str, Sensitivity]] = {
        "attributes.person_ref": Sensitivity.PERSONAL,
        "location.text": Sensitivity.INTERNAL,  # a gate, not a home
    }

    def build(self, row: RowReader, meta: RowMeta) -> CanonicalRecord:
        occurred_at = row.when("occurred_at", required=True)
        assert occurred_at is not None
        room_code = row.code("room")
        building, unit, room = split_room_code(room_code) if room_code else (None, None, None)
        community_name = row.text("community_name")
        return self.make_record(
            meta,
            occurred_at=occurred_at,
            community_code=self.community(code=row.code("community_code"), name=community_name, context=meta.context),
            location=Location(building=building, unit=unit, room=room, text=row.text("gate")),
            attributes={
                "credential": row.code("credential"),
                "person_ref": row.code("person_ref"),
                "result": row.code("result"),
                "room_code": room_code,
                "community_name": community_name,
            },
            extras=row.extras(),
        )
