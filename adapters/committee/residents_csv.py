"""Resident registry (居民登记): CSV, UTF-8 with BOM; the native id is the ID number.

Native id: 身份证号 normalised to 18 characters (GB 11643: a 15-digit number is upgraded, so the old and
new numbers of one person are the same resident). A row whose ID number is invalid is bad, reported
with the number as written.

The registry is a snapshot with no event time: ``occurred_at`` is 登记时间 (or a synonym) when the file
has one, else the context's ``as_of``. A file with neither is refused: stamping the import time would
make every re-import a new version of every resident.

性别 is kept as declared (registries often disagree with the ID number's parity; the file is the
authority for what it says); when absent it is derived from the ID number. An unrecognised value is
kept in attributes as written.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from adapters.base import RowMeta, TabularAdapter
from adapters.canonical import CanonicalRecord, Location, RecordType, Sensitivity, Subject
from adapters.errors import MissingContextError
from adapters.parsing.fields import Field, FieldSet, HeaderMatch, RowReader
from adapters.parsing.ids import birth_date_from_id, gender_from_id
from adapters.parsing.location import clean_building, clean_room, clean_unit
from adapters.parsing.text import nfkc
from adapters.protocol import ImportContext

_GENDERS: dict[str, Literal["male", "female"]] = {
    "男": "male",
    "m": "male",
    "male": "male",
    "女": "female",
    "f": "female",
    "female": "female",
}


class ResidentsCsvAdapter(TabularAdapter):
    name: ClassVar[str] = "committee.residents"
    record_type: ClassVar[RecordType] = RecordType.RESIDENT
    department: ClassVar[str] = "committee"
    description: ClassVar[str] = "resident registry: CSV (UTF-8 with BOM), native id = ID number"
    sample_file: ClassVar[str | None] = "committee/residents.csv"
    source_format = "csv"
    native_id_key = "id_number"
    fields: ClassVar[FieldSet] = FieldSet(
        [
            Field(key="name", label="姓名", synonyms=("居民姓名", "name"), required=True),
            Field(key="gender", label="性别", synonyms=("gender", "sex")),
            Field(
                key="id_number",
                label="身份证号",
                synonyms=("身份证号码", "公民身份号码", "证件号码", "id_number"),
                required=True,
            ),
            Field(key="phone", label="联系电话", synonyms=("电话", "手机", "手机号", "手机号码", "phone")),
            Field(key="community_name", label="社区", synonyms=("所属社区", "社区名称", "community")),
            Field(key="community_code", label="社区代码", synonyms=("社区编码", "community_code")),
            Field(key="building", label="楼栋", synonyms=("楼号", "楼幢", "幢号", "building")),
            Field(key="unit", label="单元", synonyms=("单元号", "unit")),
            Field(key="room", label="房号", synonyms=("房间号", "门牌号", "室号", "room")),
            Field(key="residence_type", label="人员类别", synonyms=("人口类别", "户籍类别", "居住类型")),
            Field(key="care_category", label="重点关爱", synonyms=("关爱类别", "关爱对象", "特殊人群")),
            Field(key="occurred_at", label="登记时间", synonyms=("登记日期", "更新时间", "更新日期", "registered_at")),
        ]
    )
    sensitivity: ClassVar[dict[str, Sensitivity]] = {
        "attributes.care_category": Sensitivity.SENSITIVE,  # 低保户, 残疾人: social-assistance status
        "attributes.residence_type": Sensitivity.PERSONAL,
    }

    def check_header(self, match: HeaderMatch, *, file_name: str, context: ImportContext) -> None:
        if "occurred_at" not in match.index and context.as_of is None:
            raise MissingContextError(
                f"{file_name}: {self.name} needs a 登记时间 column or ImportContext(as_of=...) "
                "(the registry snapshot's date) to set occurred_at"
            )

    def native_id(self, row: RowReader) -> str:
        id_number = row.id_number("id_number", required=True)
        assert id_number is not None
        return id_number

    def build(self, row: RowReader, meta: RowMeta) -> CanonicalRecord:
        occurred_at = row.when("occurred_at") or meta.context.as_of
        if occurred_at is None:
            occurred_at = row.when("occurred_at", required=True)  # raises "missing 登记时间"
        assert occurred_at is not None
        id_number = meta.native_id
        declared = row.text("gender")
        gender = _GENDERS.get(nfkc(declared).casefold()) if declared else None
        resident = Subject(
            role="resident",
            name=row.text("name", required=True),
            id_number=id_number,
            phone=row.phone("phone"),
            gender=gender or (None if declared else gender_from_id(id_number)),
            birth_date=birth_date_from_id(id_number),
        )
        community_name = row.text("community_name")
        return self.make_record(
            meta,
            occurred_at=occurred_at,
            community_code=self.community(code=row.code("community_code"), name=community_name, context=meta.context),
            location=Location(
                building=clean_building(row.code("building")),
                unit=clean_unit(row.code("unit")),
                room=clean_room(row.code("room")),
            ),
            subjects=[resident],
            attributes={
                "residence_type": row.text("residence_type"),
                "care_category": row.text("care_category"),
                "community_name": community_name,
                "gender_as_written": declared if declared and gender is None else None,
            },
            extras=row.extras(),
        )
