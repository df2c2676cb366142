"""Police key persons (重点人员): a JSON object {"导出时间": ..., "数据": [...]} with a nested address.

Native id: 人员编号. ``occurred_at``: 更新时间 (when the entry last changed). Community: 居住地址.社区代码,
else 居住地址.社区 looked up in the context, else the context default. 居住地址 may also be a plain
string. A row is bad when its id, 更新时间, name or ID number is missing or invalid.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import JsonAdapter, RowMeta
from adapters.canonical import CanonicalRecord, Location, RecordType, Sensitivity, Subject
from adapters.parsing.fields import Field, FieldSet, RowReader
from adapters.parsing.ids import birth_date_from_id, gender_from_id
from adapters.parsing.location import clean_building, clean_room, clean_unit, split_address
from adapters.parsing.text import clean_text

_ADDRESS = FieldSet(
    [
        Field(key="community_name", label="社区", synonyms=("社区名称", "所属社区", "community")),
        Field(key="community_code", label="社区代码", synonyms=("社区编码", "community_code")),
        Field(key="building", label="楼栋", synonyms=("楼号", "楼幢", "幢", "building")),
        Field(key="unit", label="单元", synonyms=("单元号", "unit")),
        Field(key="room", label="房号", synonyms=("房间号", "门牌号", "室", "room")),
        Field(key="text", label="详细地址", synonyms=("地址", "address", "text")),
    ]
)


class KeyPersonsJsonAdapter(JsonAdapter):
    name: ClassVar[str] = "police.key_persons"
    record_type: ClassVar[RecordType] = RecordType.KEY_PERSON
    department: ClassVar[str] = "police"
    description: ClassVar[str] = "重点人员 key persons: JSON object with a 数据 array and nested 居住地址"
    sample_file: ClassVar[str | None] = "police/key_persons.json"
    layout = "array"
    fields: ClassVar[FieldSet] = FieldSet(
        [
            Field(key="native_id", label="人员编号", synonyms=("编号", "人员ID", "person_id"), required=True),
            Field(key="name", label="姓名", synonyms=("人员姓名", "name"), required=True),
            Field(
                key="id_number", label="身份证号", synonyms=("身份证号码", "公民身份号码", "id_number"), required=True
            ),
            Field(key="category", label="类别", synonyms=("人员类别", "重点人员类别", "category")),
            Field(key="control_level", label="管控级别", synonyms=("级别", "管控等级", "control_level")),
            Field(key="address", label="居住地址", synonyms=("住址", "现住址", "address")),
            Field(key="officer", label="责任民警", synonyms=("管控民警", "民警", "officer")),
            Field(key="occurred_at", label="更新时间", synonyms=("更新日期", "录入时间", "updated_at"), required=True),
        ]
    )
    # Being on the list at all is sensitive, not merely personal.
    sensitivity: ClassVar[dict[str, Sensitivity]] = {
        "subjects[].name": Sensitivity.SENSITIVE,
        "attributes.category": Sensitivity.SENSITIVE,
        "attributes.control_level": Sensitivity.SENSITIVE,
        "attributes.responsible_officer": Sensitivity.INTERNAL,
    }

    def build(self, row: RowReader, meta: RowMeta) -> CanonicalRecord:
        occurred_at = row.when("occurred_at", required=True)
        assert occurred_at is not None
        id_number = row.id_number("id_number", required=True)
        assert id_number is not None
        person = Subject(
            role="key_person",
            name=row.text("name", required=True),
            id_number=id_number,
            birth_date=birth_date_from_id(id_number),
            gender=gender_from_id(id_number),
        )
        community_code: str | None = None
        community_name: str | None = None
        if isinstance(row.raw("address"), str):
            text = row.text("address")
            building, unit, room = split_address(text) if text else (None, None, None)
        else:
            address = row.nested("address", _ADDRESS)
            community_code, community_name = address.code("community_code"), address.text("community_name")
            building = clean_building(address.code("building"))
            unit = clean_unit(address.code("unit"))
            room = clean_room(address.code("room"))
            text = address.text("text") or _address_text(community_name, building, unit, room)
        return self.make_record(
            meta,
            occurred_at=occurred_at,
            community_code=self.community(code=community_code, name=community_name, context=meta.context),
            location=Location(building=building, unit=unit, room=room, text=text),
            subjects=[person],
            attributes={
                "category": row.text("category"),
                "control_level": row.text("control_level"),
                "responsible_officer": row.text("officer"),
                "community_name": community_name,
            },
            extras=row.extras(),
        )


def _address_text(community: str | None, building: str | None, unit: str | None, room: str | None) -> str | None:
    # The export splits the address; a readable line helps people reading the shared record.
    parts = [
        community or "",
        f"{building}幢" if building else "",
        f"{unit}单元" if unit else "",
        f"{room}室" if room else "",
    ]
    return clean_text("".join(parts))
