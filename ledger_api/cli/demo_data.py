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


# --- exports built to overlap -------------------------------------------------------------------------------
#
# The shared samples do not share people or flats on purpose: no ID number is in two organisations'
# files, and their addresses agree only where building and room numbers happen to coincide (under
# community codes that differ from file to file). The field study found 40-70% of community data
# collected twice; these three exports are built so that ``ledger demo`` shows that (and the tests can
# count it exactly):
#
# * the committee registers OVERLAP_RESIDENTS residents of 东湖社区 (community B), each in a flat of their own;
# * the police names residents 0-29 in incidents at their flats in B (even ones with the 15-digit first-
#   generation ID number), residents 50-55 and 8 other people in incidents at flats in community A;
# * the property company logs door events at the flats of residents 20-49 (room codes "3-1-502"), and at
#   12 flats in A, 3 of which the police also names.
#
# So: people, committee ∩ police = 30 in B, 36 in all; flats, committee ∩ police = 30, committee ∩ property
# = 30, police ∩ property = 10 in B and 3 in A (a small cell, shown as "< 5").

OVERLAP_RESIDENTS = 60
_OVERLAP_AREA = "330102"
_RESIDENT_HEADER = "姓名,性别,身份证号,联系电话,社区,楼栋,单元,房号,人员类别,重点关爱,登记时间"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


def overlap_person(number: int) -> tuple[str, str]:
    """Person ``number``'s ID number: (18-digit form, 15-digit first-generation form)."""
    from adapters.parsing.ids import id_check_character

    born = f"{40 + number % 50:02d}{number % 12 + 1:02d}{number % 28 + 1:02d}"
    sequence = f"{100 + number:03d}"
    first17 = f"{_OVERLAP_AREA}19{born}{sequence}"
    return first17 + id_check_character(first17), f"{_OVERLAP_AREA}{born}{sequence}"


def _resident_flat(number: int) -> tuple[int, int, str]:
    """Resident ``number``'s flat in community B: (building, unit, room)."""
    return number % 4 + 1, number // 4 % 2 + 1, f"{number // 8 + 1}0{number % 4 + 1}"


def _flat_in_a(number: int) -> tuple[int, int, str]:
    return 8, 1, f"{number + 1}01"


def _name(number: int) -> str:
    return _SURNAMES[number % len(_SURNAMES)] + _GIVEN[number * 7 % len(_GIVEN)]


def overlap_exports() -> list[DepartmentExport]:
    """The committee's resident registry, the police's incidents and the property company's door events,
    built to register the same people and flats (see above)."""
    return [_overlap_residents(), _overlap_incidents(), _overlap_access_events()]


def _overlap_residents() -> DepartmentExport:
    rows = []
    for n in range(OVERLAP_RESIDENTS):
        id18, _ = overlap_person(n)
        building, unit, room = _resident_flat(n)
        gender = "男" if int(id18[16]) % 2 else "女"
        rows.append(f"{_name(n)},{gender},{id18},1380000{n:04d},东湖社区,{building},{unit},{room},户籍,,2025-03-01")
    return DepartmentExport(
        owner_org=COMMITTEE,
        adapter="committee.residents",
        name="built-in residents_overlap.csv",
        data=("\ufeff" + "\r\n".join((_RESIDENT_HEADER, *rows, ""))).encode("utf-8"),
        community_code=COMMUNITY_B,
        community_codes={"东湖社区": COMMUNITY_B},
    )


def _incident_row(number: int, *, community: str, flat: tuple[int, int, str], id_number: str) -> str:
    building, unit, room = flat
    return (
        f"J7000012025{number:06d},2025-03-{number % 28 + 1:02d} 10:00:00,求助,邻里纠纷,{community},"
        f"{community}{building}幢{unit}单元{room}室,邻里纠纷，已调解,东湖派出所,已调解,{_name(number + 100)},"
        f"1390000{number:04d},{id_number}"
    )


def _overlap_incidents() -> DepartmentExport:
    rows = []
    for n in range(30):  # residents 0-29 at home in B; even ones with their 15-digit number
        id18, id15 = overlap_person(n)
        rows.append(
            _incident_row(n, community="东湖社区", flat=_resident_flat(n), id_number=id15 if n % 2 == 0 else id18)
        )
    for k, n in enumerate(range(50, 56)):  # residents 50-55, met in community A
        rows.append(_incident_row(n, community="清河社区", flat=_flat_in_a(8 + k), id_number=overlap_person(n)[0]))
    for k in range(8):  # people the committee does not register, in community A
        rows.append(
            _incident_row(200 + k, community="清河社区", flat=_flat_in_a(k), id_number=overlap_person(200 + k)[0])
        )
    return DepartmentExport(
        owner_org=POLICE,
        adapter="police.incidents",
        name="built-in incidents_overlap.csv",
        data=_incidents_csv(tuple(rows)),
        community_code=COMMUNITY_A,
        community_codes=POLICE_COMMUNITIES,
    )


def _access_event(number: int, *, community: str, flat: tuple[int, int, str]) -> str:
    building, unit, room = flat
    return (
        f'{{"event_id": "AC7{number:010d}", "ts": "2025-03-10T08:{number % 60:02d}:00+08:00", '
        f'"community_code": "{community}", "gate": "{building}号楼东门", "credential": "card", '
        f'"person_ref": "card:7{number:07d}", "room": "{building}-{unit}-{room}", "result": "pass"}}'
    )


def _overlap_access_events() -> DepartmentExport:
    lines = [_access_event(n, community=COMMUNITY_B, flat=_resident_flat(n)) for n in range(20, 50)]
    flats_in_a = [*range(3), *range(20, 29)]  # 3 flats the police names too, 9 it does not
    lines += [_access_event(100 + k, community=COMMUNITY_A, flat=_flat_in_a(k)) for k in flats_in_a]
    return DepartmentExport(
        owner_org=PROPERTY,
        adapter="property.access_events",
        name="built-in access_events_overlap.jsonl",
        data="\n".join(lines).encode(),
        community_code=COMMUNITY_A,
    )
