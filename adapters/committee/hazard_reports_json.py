"""Grid-member hazard reports (网格员隐患上报): a JSON array, times in epoch milliseconds.

Native id: reportNo. ``occurred_at``: reportedAt (epoch ms; seconds and text dates work too).
Community: community.code, else community.name (or a plain string) looked up in the context, else the
context default. The grid member is a subject (name, phone). A row is bad when its id, time or
category is missing, the time is impossible, or the phone is invalid.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import JsonAdapter, RowMeta
from adapters.canonical import CanonicalRecord, Location, RecordType, Sensitivity, Subject
from adapters.parsing.fields import Field, FieldSet, RowReader
from adapters.parsing.location import split_address

_MEMBER = FieldSet(
    [
        Field(key="name", label="name", synonyms=("姓名",)),
        Field(key="phone", label="phone", synonyms=("mobile", "电话", "手机", "联系电话")),
        Field(key="grid", label="grid", synonyms=("网格", "所属网格", "gridName")),
    ]
)
_COMMUNITY = FieldSet(
    [
        Field(key="code", label="code", synonyms=("社区代码", "社区编码", "communityCode")),
        Field(key="name", label="name", synonyms=("社区名称", "社区", "communityName")),
    ]
)


class HazardReportsJsonAdapter(JsonAdapter):
    name: ClassVar[str] = "committee.hazard_reports"
    record_type: ClassVar[RecordType] = RecordType.HAZARD_REPORT
    department: ClassVar[str] = "committee"
    description: ClassVar[str] = "grid-member hazard reports: JSON array, epoch-millisecond times"
    sample_file: ClassVar[str | None] = "committee/hazard_reports.json"
    layout = "array"
    fields: ClassVar[FieldSet] = FieldSet(
        [
            Field(key="native_id", label="reportNo", synonyms=("report_no", "上报编号", "编号"), required=True),
            Field(
                key="occurred_at",
                label="reportedAt",
                synonyms=("reported_at", "reportTime", "上报时间", "时间"),
                required=True,
            ),
            Field(key="member", label="gridMember", synonyms=("grid_member", "网格员", "上报人")),
            Field(key="community", label="community", synonyms=("社区",)),
            Field(key="location", label="location", synonyms=("位置", "地点", "address")),
            Field(key="category", label="category", synonyms=("隐患类别", "类别", "type"), required=True),
            Field(key="description", label="description", synonyms=("描述", "内容", "情况说明")),
            Field(key="photos", label="photos", synonyms=("照片", "图片", "images")),
            Field(key="status", label="status", synonyms=("状态", "处理状态")),
        ]
    )
    sensitivity: ClassVar[dict[str, Sensitivity]] = {
        "location.text": Sensitivity.INTERNAL,  # a stairwell or street, not a home
        "attributes.photos": Sensitivity.PERSONAL,  # pictures may show people
    }

    def build(self, row: RowReader, meta: RowMeta) -> CanonicalRecord:
        occurred_at = row.when("occurred_at", required=True)
        assert occurred_at is not None
        if isinstance(row.raw("member"), str):
            member_name, member_phone, grid = row.text("member"), None, None
        else:
            member = row.nested("member", _MEMBER)
            member_name, member_phone, grid = member.text("name"), member.phone("phone"), member.text("grid")
        if isinstance(row.raw("community"), str):
            community_code, community_name = None, row.text("community")
        else:
            community = row.nested("community", _COMMUNITY)
            community_code, community_name = community.code("code"), community.text("name")
        text = row.text("location")
        building, unit, room = split_address(text) if text else (None, None, None)
        return self.make_record(
            meta,
            occurred_at=occurred_at,
            community_code=self.community(code=community_code, name=community_name, context=meta.context),
            location=Location(building=building, unit=unit, room=room, text=text),
            subjects=[Subject(role="grid_member", name=member_name, phone=member_phone)]
            if member_name or member_phone
            else [],
            attributes={
                "category": row.text("category", required=True),
                "description": row.text("description"),
                "photos": row.json("photos"),
                "status": row.text("status"),
                "grid": grid,
                "community_name": community_name,
            },
            extras=row.extras(),
        )
