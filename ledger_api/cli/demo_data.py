"""The department exports ``ledger demo`` pushes: the shared sample files, or small built-in ones.

Every record goes through the department's adapter, from the export format the department really
produces (GB18030 CSV for police incidents, JSON Lines for door-access events, a JSON array with
epoch-millisecond times for hazard reports). The samples live beside the repository
(``../shared/samples``); a clone without them falls back to built-in exports in the same formats.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adapters import CanonicalRecord, ImportContext, ImportReport, import_file
from ledger_api.provision import COMMUNITY_A, COMMUNITY_B

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SAMPLES_DIR = REPO_ROOT.parent / "shared" / "samples"
SHANGHAI = timezone(timedelta(hours=8))

POLICE, PROPERTY, COMMITTEE = "PS-XIHU-01", "PM-LVCHENG-01", "CM-CUIYUAN-01"
#: The police export names communities, not codes: 东湖社区 is the committee's community (B).
POLICE_COMMUNITIES = {"东湖社区": COMMUNITY_B, "清河社区": COMMUNITY_A, "柳岸社区": COMMUNITY_A}

_INCIDENT_HEADER = ",".join((
    "警情编号", "报警时间", "警情类别", "警情细类", "所属社区", "发案地址", "简要警情", "处警单位", "处置结果",
    "报警人", "报警人电话", "涉事人员身份证号",
))  # fmt: skip
_BUILT_IN_INCIDENTS = (
    "J9000012025000001,2025-03-02 09:15:00,求助,老人走失,东湖社区,东湖社区3幢1单元502室,独居老人走失，已寻回,"
    "东湖派出所,已处置,王丽,13800000001,330102194203157124",
    "J9000012025000002,2025-03-05 21:40:00,治安,噪音扰民,清河社区,清河社区5幢2单元301室,噪音扰民，已到场处置,"
    "清河派出所,已调解,李强,13900000002,330102195511092339",
    "J9000012025000003,2025-03-09 14:05:00,诈骗,电信诈骗,东湖社区,东湖社区7幢2单元1702室,电信诈骗，已到场处置,"
    "东湖派出所,已调解,赵敏,13700000003,33010219480722456X",
)
_BUILT_IN_ACCESS_EVENTS = (
    '{"event_id": "AC90000000001", "ts": "2025-03-08T17:27:20+08:00", "community_code": "330102001", '
    '"gate": "3号楼西门", "credential": "face", "person_ref": "card:90000001", "room": "3-1-502", "result": "pass"}',
    '{"event_id": "AC90000000002", "ts": "2025-03-08T22:03:11+08:00", "community_code": "330102001", '
    '"gate": "5号楼地库", "credential": "qr", "person_ref": "card:90000002", "room": "5-2-301", "result": "pass"}',
)
_BUILT_IN_HAZARDS = (
    '[{"reportNo": "WG-900-00001", "reportedAt": 1741651954000, "gridMember": {"name": "林海", "phone": '
    '"15635390121", "grid": "东湖社区第1网格"}, "community": {"code": "330102002", "name": "东湖社区"}, '
    '"location": "3幢1单元 楼道", "category": "消防通道占用", "description": "需物业处理", "photos": [], '
    '"status": "处理中"}, {"reportNo": "WG-900-00002", "reportedAt": 1741747522000, "gridMember": {"name": '
    '"高红桂", "phone": "19184664170", "grid": "东湖社区第2网格"}, "community": {"code": "330102002", "name": '
    '"东湖社区"}, "location": "7幢2单元 楼道", "category": "井盖缺失", "description": "需物业处理", '
    '"photos": [], "status": "已办结"}]'
)


@dataclass(frozen=True, kw_only=True)
class DepartmentExport:
    """One export file of one department, ready for its adapter."""

    owner_org: str
    adapter: str
    name: str
    """Where it came from, as printed: a path under the samples folder, or ``built-in …``."""
    data: bytes
    community_code: str
    community_codes: Mapping[str, str] = field(default_factory=dict)

    def read(self) -> tuple[ImportReport, list[CanonicalRecord]]:
        """Parse the export with the department's adapter: the report and the valid, unique records."""
        records: list[CanonicalRecord] = []
        context = ImportContext(
            owner_org=self.owner_org,
            community_code=self.community_code,
            community_codes=self.community_codes,
            file_name=Path(self.name).name,
        )
        report = import_file(io.BytesIO(self.data), self.adapter, context=context, sink=records.extend)
        return report, records


def department_exports(samples_dir: Path) -> tuple[list[DepartmentExport], bool]:
    """One export per demo organisation, and whether they are the shared samples (else built-in)."""
    files = {
        POLICE: ("police.incidents", "police/incidents_2025Q1.csv", COMMUNITY_A, POLICE_COMMUNITIES),
        PROPERTY: ("property.access_events", "property/access_events.jsonl", COMMUNITY_A, {}),
        COMMITTEE: ("committee.hazard_reports", "committee/hazard_reports.json", COMMUNITY_B, {}),
    }
    if all((samples_dir / path).is_file() for _, path, _, _ in files.values()):
        return [
            DepartmentExport(
                owner_org=org,
                adapter=adapter,
                name=path,
                data=(samples_dir / path).read_bytes(),
                community_code=community,
                community_codes=codes,
            )
            for org, (adapter, path, community, codes) in files.items()
        ], True
    built_in = {
        POLICE: _incidents_csv(_BUILT_IN_INCIDENTS),
        PROPERTY: "\n".join(_BUILT_IN_ACCESS_EVENTS).encode(),
        COMMITTEE: _BUILT_IN_HAZARDS.encode(),
    }
    return [
        DepartmentExport(
            owner_org=org,
            adapter=adapter,
            name=f"built-in {Path(path).name}",
            data=built_in[org],
            community_code=community,
            community_codes=codes,
        )
        for org, (adapter, path, community, codes) in files.items()
    ], False


def fresh_incident_export(*, now: datetime) -> DepartmentExport:
    """A one-row police export with a new 警情编号: an incident reported just now in the committee's community."""
    local = now.astimezone(SHANGHAI)
    native_id = f"J8{local:%Y%m%d%H%M%S}{local.microsecond // 1000:03d}"
    row = (
        f"{native_id},{local:%Y-%m-%d %H:%M:%S},求助,老人摔倒,东湖社区,东湖社区3幢1单元502室,独居老人摔倒，已送医,"
        "东湖派出所,已处置,王丽,13800000001,330102194203157124"
    )
    return DepartmentExport(
        owner_org=POLICE,
        adapter="police.incidents",
        name=f"incident {native_id}",
        data=_incidents_csv((row,)),
        community_code=COMMUNITY_A,
        community_codes=POLICE_COMMUNITIES,
    )


def _incidents_csv(rows: tuple[str, ...]) -> bytes:
    # As the station's case system writes it: GB18030 with CRLF line ends.
    return "\r\n".join((_INCIDENT_HEADER, *rows, "")).encode("gb18030")
