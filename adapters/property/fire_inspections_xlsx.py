"""Fire-facility inspections (消防设施巡检): XLSX, a merged title row above the header.

Native id: 巡检单号. ``occurred_at``: 巡检时间 (a datetime cell, or text/serial). Community: 社区代码, else
社区 looked up in the context, else the context default. 有效期至 is kept as an ISO date. The inspector
is a subject. A row is bad when its id, time or facility type is missing or a date is impossible.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import RowMeta, TabularAdapter
from adapters.canonical import CanonicalRecord, Location, RecordType, Sensitivity, Subject
from adapters.parsing.fields import Field, FieldSet, RowReader
from adapters.parsing.location import clean_building


class FireInspectionsXlsxAdapter(TabularAdapter):
    name: ClassVar[str] = "property.fire_inspections"
    record_type: ClassVar[RecordType] = RecordType.FIRE_INSPECTION
    department: ClassVar[str] = "property"
    description: ClassVar[str] = "fire-facility inspections: XLSX with a merged title row above the header"
    sample_file: ClassVar[str | None] = "property/fire_inspections.xlsx"
    source_format = "xlsx"
    fields: ClassVar[FieldSet] = FieldSet(
        [
            Field(key="native_id", label="巡检单号", synonyms=("巡检编号", "单号", "记录编号"), required=True),
            Field(key="occurred_at", label="巡检时间", synonyms=("巡检日期", "检查时间", "检查日期"), required=True),
            Field(key="community_name", label="社区", synonyms=("所属社区", "社区名称", "小区")),
            Field(key="community_code", label="社区代码", synonyms=("社区编码",)),
            Field(key="building", label="楼栋", synonyms=("楼号", "楼幢", "幢号")),
            Field(key="position", label="位置", synonyms=("具体位置", "安装位置", "部位")),
            Field(key="facility_type", label="设施类型", synonyms=("设施类别", "设施名称", "消防设施"), required=True),
            Field(key="facility_id", label="设施编号", synonyms=("设备编号", "设施编码")),
            Field(key="status", label="状态", synonyms=("设施状态", "检查结果", "巡检结果")),
            Field(key="expires_on", label="有效期至", synonyms=("有效期", "到期日期", "有效期限")),
            Field(key="inspector", label="巡检人", synonyms=("检查人", "巡检员")),
            Field(key="remark", label="备注", synonyms=("说明",)),
        ]
    )
    sensitivity: ClassVar[dict[str, Sensitivity]] = {
        "location.text": Sensitivity.INTERNAL,  # a stairwell or plant room, not a home
    }

    def build(self, row: RowReader, meta: RowMeta) -> CanonicalRecord:
        occurred_at = row.when("occurred_at", required=True)
        assert occurred_at is not None
        expires_on = row.day("expires_on")
        inspector = row.text("inspector")
        community_name = row.text("community_name")
        return self.make_record(
            meta,
            occurred_at=occurred_at,
            community_code=self.community(code=row.code("community_code"), name=community_name, context=meta.context),
            location=Location(building=clean_building(row.code("building")), text=row.text("position")),
            subjects=[Subject(role="inspector", name=inspector)] if inspector else [],
            attributes={
                "facility_type": row.text("facility_type", required=True),
                "facility_id": row.code("facility_id"),
                "status": row.text("status"),
                "expires_on": expires_on.isoformat() if expires_on else None,
                "remark": row.text("remark"),
                "community_name": community_name,
            },
            extras=row.extras(),
        )
