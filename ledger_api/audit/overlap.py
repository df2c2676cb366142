"""Collected twice, measured: how many people and flats several organisations each register.

Everything is counted from keyed blind indexes (HMAC under the consortium key, see
:func:`adapters.canonical.blind_index`), never from an ID number, a name or an address: the input is a
stream of *links* ``(org_id, community_code, kind, blind_index)``, one per record that names a person
(kind ``id_number``) or a flat (kind ``address``). The auditor takes its links from the anchored batch
manifests (:func:`links_of_records`), the gateway from its index; both count with :func:`count_overlap`.

What a subject is:

* a person is the blind index of the 18-digit form of their ID number (a 15-digit number was upgraded
  before it was indexed), wherever they live: in the total, a person two communities know is one person;
* a flat is its address blind index *within its community*: the normalised address ("10-1-1502") does not
  name the community, and 10幢1单元1502室 exists in many of them.

Small cells (the statistical-disclosure rule): a count from 1 to ``min_cell - 1`` is never shown, only
"< min_cell" (in JSON ``{"count": null, "suppressed": true, "reason": "small", "shown_as": "< 5"}``).
So that a hidden count cannot be worked out by subtraction, every line of cells shown beside their
total (an organisation's subjects per community and in all; a pair's shared subjects per community and
in all; a department's covered and not-covered shares of what another holds) is protected as a whole
(:func:`suppress_line`): complementary cells are hidden too (``"reason": "complementary"``, shown as
"hidden"), the smallest first, until at least two are hidden, they add up to at least ``min_cell``,
and no small hidden cell has only one value left that fits the total (knowing that a complementary
cell is at least ``min_cell``); when no cell is left to hide, the total is hidden. A percentage is
shown only when both its counts are: ``12.5 %`` of a shown 40 would give back a hidden 5. Zero is shown
(it names nobody).

Nothing per subject ever leaves this module: the answers hold counts, percentages, organisation ids,
community codes and grant ids only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Final, Literal

from ledger_api.audit.model import VerifiedRecord

__all__ = [
    "ALL_COMMUNITIES",
    "DEFAULT_MIN_CELL",
    "KINDS",
    "KIND_LABELS",
    "OVERLAP_FORMAT",
    "Cell",
    "DepartmentOverlap",
    "Link",
    "OtherHolder",
    "OverlapCounts",
    "OverlapReport",
    "PairRow",
    "Share",
    "SuppressedBecause",
    "count_overlap",
    "department_overlap",
    "links_of_records",
    "overlap_report",
    "suppress_line",
]

OVERLAP_FORMAT: Final = "ledger-overlap/1"
KINDS: Final = ("id_number", "address")
KIND_LABELS: Final = {"id_number": "people (by ID number)", "address": "flats (by address)"}
DEFAULT_MIN_CELL: Final = 5
ALL_COMMUNITIES: Final = "*"
"""The scope of a total over every community (``community: null`` in JSON)."""
UNKNOWN_COMMUNITY: Final = "unknown"

Link = tuple[str, str, str, str]
"""``(org_id, community_code, kind, blind_index)``."""
_Key = str | tuple[str, str]


def _subject(kind: str, community: str, index: str) -> _Key:
    return index if kind == "id_number" else (community, index)


# --- counting ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OverlapCounts:
    """The true counts. Not for display: :func:`overlap_report` applies the small-cell rule."""

    orgs: tuple[str, ...]
    communities: tuple[str, ...]
    holdings: Mapping[tuple[str, ...], int]
    """``(org, kind, scope)`` → distinct subjects the organisation holds (scope: a community or ``*``)."""
    shared: Mapping[tuple[str, ...], int]
    """``(org_a, org_b, kind, scope)`` with ``org_a < org_b`` → distinct subjects both hold."""


def count_overlap(links: Iterable[Link]) -> OverlapCounts:
    """Count distinct subjects per organisation and per pair of organisations, per community and in total.

    One pass over the links, keeping per subject a bit mask of the organisations that hold it; then each
    distinct mask (there are few) adds its number of subjects to every organisation and pair in it."""
    bits: dict[str, int] = {}
    groups: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)  # (kind, community) -> index -> mask
    people: dict[str, int] = {}  # id_number index -> mask, across communities
    for org, community, kind, index in links:
        bit = bits.get(org)
        if bit is None:
            bit = bits[org] = 1 << len(bits)
        group = groups[(kind, community)]
        group[index] = group.get(index, 0) | bit
        if kind == "id_number":
            people[index] = people.get(index, 0) | bit
        elif kind != "address":
            raise ValueError(f"unknown link kind {kind!r} (expected one of {', '.join(KINDS)})")
    masks: dict[tuple[str, str], Counter[int]] = {scope: Counter(group.values()) for scope, group in groups.items()}
    masks[("id_number", ALL_COMMUNITIES)] = Counter(people.values())
    flats: Counter[int] = Counter()
    for (kind, _community), counter in masks.items():
        if kind == "address":
            flats.update(counter)  # a flat is its address within its community: communities add up
    masks[("address", ALL_COMMUNITIES)] = flats
    names = {bit: org for org, bit in bits.items()}
    holdings: Counter[tuple[str, ...]] = Counter()
    shared: Counter[tuple[str, ...]] = Counter()
    for (kind, scope), counter in masks.items():
        for mask, n in counter.items():
            members = sorted(names[bit] for bit in names if mask & bit)
            for org in members:
                holdings[(org, kind, scope)] += n
            for a, b in combinations(members, 2):
                shared[(a, b, kind, scope)] += n
    return OverlapCounts(
        orgs=tuple(sorted(bits)),
        communities=tuple(sorted({community for _kind, community in groups})),
        holdings=dict(holdings),
        shared=dict(shared),
    )


def links_of_records(records: Iterable[VerifiedRecord]) -> Iterable[Link]:
    """The auditor's links: every anchored record version's blind indexes (manifest metadata), erased
    (crypto-shredded) versions left out: their owner no longer holds what they said."""
    for record in records:
        if record.erased:
            continue
        community = record.community_code or UNKNOWN_COMMUNITY
        for index in record.subjects:
            yield record.owner_org, community, "id_number", index
        for index in record.addresses:
            yield record.owner_org, community, "address", index


# --- the small-cell rule ----------------------------------------------------------------------------------


SuppressedBecause = Literal["small", "complementary"]


@dataclass(frozen=True, slots=True)
class Cell:
    """A count as shown: ``value`` None when suppressed (the true number is not kept)."""

    value: int | None
    min_cell: int
    reason: SuppressedBecause | None = None

    @property
    def suppressed(self) -> bool:
        return self.value is None

    def text(self) -> str:
        if self.value is not None:
            return f"{self.value:,}"
        return f"< {self.min_cell}" if self.reason == "small" else "hidden"

    def to_json_dict(self) -> dict[str, Any]:
        if self.value is None:
            return {"count": None, "suppressed": True, "reason": self.reason, "shown_as": self.text()}
        return {"count": self.value, "suppressed": False}


@dataclass(frozen=True, slots=True)
class Share:
    """A percentage as shown, one decimal; None when suppressed (or undefined: nothing below it)."""

    pct: float | None
    suppressed: bool

    @classmethod
    def of(cls, part: Cell, whole: Cell) -> Share:
        if part.value is None or whole.value is None:
            return cls(pct=None, suppressed=True)
        return cls(pct=round(100.0 * part.value / whole.value, 1) if whole.value else None, suppressed=False)

    def text(self) -> str:
        if self.suppressed:
            return "—"
        return "" if self.pct is None else f"{self.pct:.1f} %"

    def to_json_dict(self) -> dict[str, Any]:
        return {"pct": self.pct, "suppressed": self.suppressed}


def suppress_line(cells: Mapping[str, int], total: int, *, min_cell: int) -> tuple[dict[str, Cell], Cell]:
    """Cells that add up (about) to ``total``, shown under the small-cell rule (see the module's doc)."""
    small = {name for name, n in cells.items() if 0 < n < min_cell}
    hidden = set(small)
    hide_total = 0 < total < min_cell
    while hidden and not hide_total and not _protected(cells, hidden, small, min_cell):
        rest = sorted((n, name) for name, n in cells.items() if name not in hidden and n > 0)
        if not rest:
            hide_total = True
        else:
            hidden.add(rest[0][1])
    shown = {
        name: Cell(None, min_cell, "small" if name in small else "complementary") if name in hidden
        else Cell(n, min_cell)
        for name, n in cells.items()
    }  # fmt: skip
    if hide_total:
        return shown, Cell(None, min_cell, "small" if total < min_cell else "complementary")
    return shown, Cell(total, min_cell)


def _protected(cells: Mapping[str, int], hidden: set[str], small: set[str], min_cell: int) -> bool:
    """Whether the hidden cells' sum (total minus the cells shown) leaves every small one more than one value,
    for someone who knows which are small (1 to ``min_cell - 1``) and which complementary (``min_cell`` up)."""
    total = sum(cells[name] for name in hidden)
    if len(hidden) < 2 or total < min_cell:
        return False
    others_small, complementary = len(small) - 1, len(hidden) - len(small)
    highest = min(min_cell - 1, total - others_small - complementary * min_cell)
    lowest = 1 if complementary else max(1, total - others_small * (min_cell - 1))
    return highest > lowest


# --- the auditor's report ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PairRow:
    org_a: str
    org_b: str
    kind: str
    community: str
    """A community code, or :data:`ALL_COMMUNITIES`."""
    a_subjects: Cell
    b_subjects: Cell
    both: Cell

    @property
    def share_of_a(self) -> Share:
        return Share.of(self.both, self.a_subjects)

    @property
    def share_of_b(self) -> Share:
        return Share.of(self.both, self.b_subjects)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "org_a": self.org_a,
            "org_b": self.org_b,
            "kind": self.kind,
            "community": None if self.community == ALL_COMMUNITIES else self.community,
            "a_subjects": self.a_subjects.to_json_dict(),
            "b_subjects": self.b_subjects.to_json_dict(),
            "both": self.both.to_json_dict(),
            "share_of_a": self.share_of_a.to_json_dict(),
            "share_of_b": self.share_of_b.to_json_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class OverlapReport:
    """Holdings and pairwise overlaps as shown (small cells suppressed)."""

    min_cell: int
    orgs: tuple[str, ...]
    communities: tuple[str, ...]
    holdings: Mapping[tuple[str, ...], Cell]
    """``(org, kind, scope)`` → subjects held."""
    pairs: tuple[PairRow, ...]

    def pair(self, org_a: str, org_b: str, kind: str, community: str = ALL_COMMUNITIES) -> PairRow:
        a, b = sorted((org_a, org_b))
        return next(p for p in self.pairs if (p.org_a, p.org_b, p.kind, p.community) == (a, b, kind, community))

    def share(self, row_org: str, column_org: str, kind: str, community: str = ALL_COMMUNITIES) -> tuple[Cell, Share]:
        """Of ``row_org``'s subjects, how many (and what share) ``column_org`` holds too."""
        pair = self.pair(row_org, column_org, kind, community)
        return pair.both, pair.share_of_a if pair.org_a == row_org else pair.share_of_b

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": OVERLAP_FORMAT,
            "min_cell": self.min_cell,
            "kinds": list(KINDS),
            "organisations": list(self.orgs),
            "communities": list(self.communities),
            "holdings": [
                {
                    "org_id": org,
                    "kind": kind,
                    "community": None if scope == ALL_COMMUNITIES else scope,
                    "subjects": cell.to_json_dict(),
                }
                for (org, kind, scope), cell in self.holdings.items()
            ],
            "pairs": [pair.to_json_dict() for pair in self.pairs],
        }

    def to_text(self) -> str:
        """Tables for a terminal: per kind, the total, then each community."""
        lines = [f"Overlap of {len(self.orgs)} organisations from blind indexes only; counts under "
                 f"{self.min_cell} shown as \"< {self.min_cell}\""]  # fmt: skip
        width = max((len(org) for org in self.orgs), default=12)
        for kind in KINDS:
            for scope in (ALL_COMMUNITIES, *self.communities):
                rows = [p for p in self.pairs if p.kind == kind and p.community == scope]
                if not rows:
                    continue
                where = "all communities" if scope == ALL_COMMUNITIES else f"community {scope}"
                lines.append(f"\n{KIND_LABELS[kind]}, {where}")
                lines.append(f"  {'A':<{width}}  {'B':<{width}}  {'A holds':>9}  {'B holds':>9}  {'both':>7}  "
                             f"{'% of A':>8}  {'% of B':>8}")  # fmt: skip
                lines.extend(
                    f"  {p.org_a:<{width}}  {p.org_b:<{width}}  {p.a_subjects.text():>9}  {p.b_subjects.text():>9}  "
                    f"{p.both.text():>7}  {p.share_of_a.text():>8}  {p.share_of_b.text():>8}"
                    for p in rows
                )
        if not self.pairs:
            lines.append("no two organisations hold any subject (or fewer than two organisations hold any)")
        return "\n".join(lines)


def _lines_by(values: Mapping[tuple[str, ...], int], scopes: Sequence[str]) -> dict[tuple[str, ...], dict[str, int]]:
    """Group counts keyed ``(*line, scope)`` into lines: ``line`` → {community: n} (every community, zeros too)."""
    lines: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(scopes, 0))
    for (*line, scope), n in values.items():
        lines[tuple(line)][scope] = n
    return lines


def _suppressed(
    values: Mapping[tuple[str, ...], int], communities: Sequence[str], min_cell: int
) -> dict[tuple[str, ...], Cell]:
    shown: dict[tuple[str, ...], Cell] = {}
    for line, cells in _lines_by(values, (*communities, ALL_COMMUNITIES)).items():
        total = cells.pop(ALL_COMMUNITIES)
        by_community, total_cell = suppress_line(cells, total, min_cell=min_cell)
        shown[(*line, ALL_COMMUNITIES)] = total_cell
        shown.update({(*line, community): cell for community, cell in by_community.items()})
    return shown


def overlap_report(counts: OverlapCounts, *, min_cell: int = DEFAULT_MIN_CELL) -> OverlapReport:
    """The counts as shown: each organisation's holdings and each pair's overlap, small cells suppressed."""
    if min_cell < 1:
        raise ValueError(f"min_cell must be at least 1, not {min_cell}")
    holdings = _suppressed(counts.holdings, counts.communities, min_cell)
    shared = _suppressed(counts.shared, counts.communities, min_cell)
    pairs = []
    for a, b in combinations(counts.orgs, 2):
        for kind in KINDS:
            for scope in (ALL_COMMUNITIES, *counts.communities):
                a_cell = holdings.get((a, kind, scope), Cell(0, min_cell))
                b_cell = holdings.get((b, kind, scope), Cell(0, min_cell))
                if a_cell.value == 0 or b_cell.value == 0:
                    continue  # one of them holds nothing of this kind here: no overlap to show
                pairs.append(
                    PairRow(org_a=a, org_b=b, kind=kind, community=scope, a_subjects=a_cell, b_subjects=b_cell,
                            both=shared.get((a, b, kind, scope), Cell(0, min_cell)))
                )  # fmt: skip
    visible = {key: cell for key, cell in sorted(holdings.items()) if counts.holdings.get(key)}
    return OverlapReport(
        min_cell=min_cell, orgs=counts.orgs, communities=counts.communities, holdings=visible, pairs=tuple(pairs)
    )


# --- a department's own view ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OtherHolder:
    """Another organisation that holds some of the department's subjects of one kind."""

    org_id: str
    kind: str
    held: Cell
    """Of the department's subjects, how many this organisation holds too."""
    share: Share
    covered: Cell
    """How many of those a grant from this organisation to the department covers today."""
    not_covered: Cell
    grants: tuple[int, ...]
    """The grants (from this organisation to the department, in force today) that cover any of them."""
    communities_not_covered: tuple[str, ...]
    """Where this organisation holds the ones no grant covers: the scope of a grant to ask for."""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "kind": self.kind,
            "held": self.held.to_json_dict(),
            "share_of_mine": self.share.to_json_dict(),
            "covered_by_grants": self.covered.to_json_dict(),
            "not_covered": self.not_covered.to_json_dict(),
            "grants": list(self.grants),
            "covered_today": bool(self.grants),
        }


@dataclass(frozen=True, kw_only=True)
class DepartmentOverlap:
    org_id: str
    min_cell: int
    subjects: Mapping[str, int]
    """kind → the department's own distinct subjects (its own data: never suppressed)."""
    others: tuple[OtherHolder, ...]

    def ask_for(self) -> list[dict[str, Any]]:
        """The grants the department could ask for instead of collecting again: one per organisation whose
        holdings of its subjects no grant covers, scoped to the communities they are in."""
        wanted: dict[str, dict[str, Any]] = {}
        for other in self.others:
            if other.not_covered.value == 0:
                continue
            entry = wanted.setdefault(other.org_id, {"owner_org": other.org_id, "kinds": [], "communities": set()})
            entry["kinds"].append(other.kind)
            entry["communities"].update(other.communities_not_covered)
        return [{**entry, "communities": sorted(entry["communities"])} for entry in wanted.values()]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": OVERLAP_FORMAT,
            "org_id": self.org_id,
            "min_cell": self.min_cell,
            "subjects": dict(self.subjects),
            "others": [other.to_json_dict() for other in self.others],
            "ask_for": self.ask_for(),
        }


def department_overlap(
    links: Iterable[Link],
    *,
    org_id: str,
    covered: Iterable[tuple[int, Link]] = (),
    min_cell: int = DEFAULT_MIN_CELL,
) -> DepartmentOverlap:
    """Of ``org_id``'s subjects, the share each other organisation already holds, and how much of it the
    grants in force today cover. ``covered``: ``(grant_id, link)`` for each link of another organisation's
    record that a grant from it to ``org_id`` covers (the gateway decides that with the one access rule)."""
    everything = list(links)
    mine: dict[str, set[_Key]] = {kind: set() for kind in KINDS}
    for org, community, kind, index in everything:
        if org == org_id:
            mine[kind].add(_subject(kind, community, index))
    theirs: dict[tuple[str, str], dict[_Key, set[str]]] = defaultdict(lambda: defaultdict(set))
    for org, community, kind, index in everything:
        key = _subject(kind, community, index)
        if org != org_id and key in mine[kind]:
            theirs[(org, kind)][key].add(community)
    granted: dict[tuple[str, str], set[_Key]] = defaultdict(set)
    grant_ids: dict[tuple[str, str], set[int]] = defaultdict(set)
    for grant_id, (org, community, kind, index) in covered:
        key = _subject(kind, community, index)
        if org != org_id and key in mine[kind]:
            granted[(org, kind)].add(key)
            grant_ids[(org, kind)].add(grant_id)
    others = []
    for (org, kind), held in sorted(theirs.items()):
        covered_keys = granted[(org, kind)] & held.keys()
        parts, held_cell = suppress_line(
            {"covered": len(covered_keys), "not_covered": len(held) - len(covered_keys)}, len(held), min_cell=min_cell
        )
        own = Cell(len(mine[kind]), min_cell)
        missing = {c for key, places in held.items() if key not in covered_keys for c in places}
        others.append(
            OtherHolder(
                org_id=org, kind=kind, held=held_cell, share=Share.of(held_cell, own), covered=parts["covered"],
                not_covered=parts["not_covered"], grants=tuple(sorted(grant_ids[(org, kind)])),
                communities_not_covered=tuple(sorted(missing)),
            )
        )  # fmt: skip
    return DepartmentOverlap(
        org_id=org_id,
        min_cell=min_cell,
        subjects={kind: len(keys) for kind, keys in mine.items()},
        others=tuple(others),
    )
