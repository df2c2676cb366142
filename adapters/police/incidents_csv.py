"""Police incidents (警情): CSV from the station's case system, GB18030, CRLF, Chinese headers.

Native id: 警情编号. ``occurred_at``: 报警时间. Community: 社区代码 when present, else 所属社区 looked up in
the context's ``community_codes``, else the context default. Subjects: the reporter (报警人, phone) and
the involved person (涉事人员身份证号; birth date and gender derived from the number). A row is bad
when its id, time or category is missing, the time is impossible, or a phone or ID number is invalid.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import RowMeta, TabularAdapter
from adapters.canonical import CanonicalRecord, Location, RecordType, Subject
from adapters.parsing.fields import Field, FieldSet, RowReader
from adapters.parsing.ids import birth_date_from_id, gender_from_id
from adapters.parsing.location import split_address


class IncidentsCsvAdapter(TabularAdapter):
    name: ClassVar[str] = "police.incidents"
    record_type: ClassVar[RecordType] = RecordType.INCIDENT
    department: ClassVar[str] = "police"
    description: ClassVar[str] = "警情 incidents: CSV (GB18030, CRLF, Chinese headers) from the police case system"
    sample_file: ClassVar[str | None] = "police/incidents_2025Q1.csv"
    source_format = "csv"
    fields: ClassVar[FieldSet] = FieldSet(
        [
            Field(
                key="native_id",
                label="警情编号",
                synonyms=("警情号", "接警编号", "接警单号", "事件编号", "案件编号", "incident_id"),
                required=True,
            ),
            Field(
                key="occurred_at",
                label="报警时间",
                synonyms=("接警时间", "报警日期", "发生时间", "案发时间", "reported_at", "occurred_at"),
                required=True,
            ),
            Field(
                key="category", label="警情类别", synonyms=("警情类型", "警情大类", "类别", "category"), required=True
            ),
            Field(key="subcategory", label="警情细类", synonyms=("细类", "警情子类", "警情小类", "subcategory")),
            Field(key="community_name", label="所属社区", synonyms=("社区", "社区名称", "community")),
            Field(key="community_code", label="社区代码", synonyms=("社区编码", "community_code")),
            Field(key="address", label="发案地址", synonyms=("事发地址", "案发地址", "发生地址", "地址", "address")),
            Field(key="summary", label="简要警情", synonyms=("警情摘要", "简要案情", "警情内容", "summary")),
            Field(key="handling_unit", label="处警单位", synonyms=("处置单位", "管辖单位", "handling_unit")),
            Field(key="outcome", label="处置结果", synonyms=("处理结果", "处警结果", "outcome")),
            Field(key="reporter_name", label="报警人", synonyms=("报警人姓名", "reporter")),
            Field(
                key="reporter_phone",
                label="报警人电话",
                synonyms=("报警电话", "报警人联系电话", "联系电话", "reporter_phone"),
            ),
            Field(
                key="involved_id_number",
                label="涉事人员身份证号",
                synonyms=("涉事人身份证号", "涉事人员身份证号码", "当事人身份证号", "身份证号", "身份证号码"),
            ),
        ]
    )

    def build(self, row: RowReader, meta: RowMeta) -> CanonicalRecord:
        occurred_at = row.when("occurred_at", required=True)
        assert occurred_at is not None
        category = row.text("category", required=True)
        address = row.text("address")
        building, unit, room = split_address(address) if address else (None, None, None)
        subjects: list[Subject] = []
        reporter, reporter_phone = row.text("reporter_name"), row.phone("reporter_phone")
        if reporter or reporter_phone:
            subjects.append(Subject(role="reporter", name=reporter, phone=reporter_phone))
        involved = row.id_number("involved_id_number")
        if involved:
            subjects.append(
                Subject(
                    role="involved",
                    id_number=involved,
                    birth_date=birth_date_from_id(involved),
                    gender=gender_from_id(involved),
                )
            )
        community_name = row.text("community_name")
        return self.make_record(
            meta,
            occurred_at=occurred_at,
            community_code=self.community(code=row.code("community_code"), name=community_name, context=meta.context),
            location=Location(building=building, unit=unit, room=room, text=address),
            subjects=subjects,
            attributes={
                "category": category,
                "subcategory": row.text("subcategory"),
                "summary": row.text("summary"),
                "handling_unit": row.text("handling_unit"),
                "outcome": row.text("outcome"),
                "community_name": community_name,
            },
            extras=row.extras(),
        )
