"""Property tests (Hypothesis) for ID numbers, phones and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adapters.parsing.dates import parse_date, parse_datetime
from adapters.parsing.ids import birth_date_from_id, gender_from_id, id_check_character, normalise_id_number
from adapters.parsing.phones import normalise_phone

CST = timezone(timedelta(hours=8))
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]  # GB 11643 table, written out independently


def reference_check(first17: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


regions = st.from_regex(r"[1-8][0-9]{5}", fullmatch=True)
births = st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31))
sequences = st.integers(min_value=0, max_value=999).map(lambda n: f"{n:03d}")


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    first17 = draw(regions) + draw(births).strftime("%Y%m%d") + draw(sequences)
    return first17 + reference_check(first17)


@given(valid_ids())
def test_valid_ids_are_accepted_unchanged(id18: str) -> None:
    assert id_check_character(id18[:17]) == id18[17]
    assert normalise_id_number(id18) == id18
    assert normalise_id_number(id18.lower()) == id18  # lower-case x
    assert birth_date_from_id(id18).strftime("%Y%m%d") == id18[6:14]
    assert gender_from_id(id18) == ("male" if int(id18[16]) % 2 else "female")


@given(valid_ids(), st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_any_single_digit_error_is_rejected(id18: str, position: int, delta: int) -> None:
    # ISO 7064 MOD 11-2 detects every single-digit substitution.
    digit = (int(id18[position]) + delta) % 10
    corrupted = id18[:position] + str(digit) + id18[position + 1 :]
    with pytest.raises(ValueError, match="ID number"):
        normalise_id_number(corrupted)


@given(valid_ids(), st.sampled_from(["0123456789X"]))
def test_wrong_check_character_is_rejected(id18: str, alphabet: str) -> None:
    for wrong in alphabet:
        if wrong != id18[17]:
            with pytest.raises(ValueError, match="check character"):
                normalise_id_number(id18[:17] + wrong)


@given(regions, st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)), sequences)
def test_15_digit_ids_are_upgraded_to_18(region: str, born: date, seq: str) -> None:
    id15 = region + born.strftime("%y%m%d") + seq
    id18 = normalise_id_number(id15)
    assert len(id18) == 18
    assert id18[:17] == region + born.strftime("%Y%m%d") + seq  # "19" inserted before the year
    assert id18[17] == reference_check(id18[:17])
    assert normalise_id_number(id18) == id18  # the upgraded form is itself valid


@given(valid_ids(), st.sampled_from(["", " ", "-", "\u3000"]))
def test_full_width_and_spaced_ids_normalise(id18: str, separator: str) -> None:
    decorated = id18[:6] + separator + id18[6:14] + separator + id18[14:]
    assert normalise_id_number(full_width(decorated)) == id18
    assert normalise_id_number(f"  {decorated}\t") == id18


@given(regions, st.integers(min_value=1, max_value=12), st.integers(min_value=29, max_value=39), sequences)
def test_impossible_birth_dates_are_rejected(region: str, month: int, day: int, seq: str) -> None:
    try:
        date(1990, month, day)
    except ValueError:
        first17 = f"{region}1990{month:02d}{day:02d}{seq}"
        with pytest.raises(ValueError, match="birth date"):
            normalise_id_number(first17 + reference_check(first17))
    else:
        assume(False)


def test_future_birth_date_is_rejected() -> None:
    first17 = f"330106{datetime.now(CST).year + 1}0101123"
    with pytest.raises(ValueError, match="birth date"):
        normalise_id_number(first17 + reference_check(first17))


mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@given(mobiles, st.sampled_from(["", "+86 ", "+86-", "0086", "86", "0"]), st.sampled_from(["", " ", "-"]))
def test_mobile_numbers_normalise(mobile: str, prefix: str, separator: str) -> None:
    decorated = prefix + mobile[:3] + separator + mobile[3:7] + separator + mobile[7:]
    assert normalise_phone(decorated) == mobile
    assert normalise_phone(full_width(decorated)) == mobile


@given(
    st.sampled_from(["010", "021", "0571", "0755", "0931"]),
    st.from_regex(r"[2-8][0-9]{6,7}", fullmatch=True),
    st.sampled_from(["-", " ", ""]),
)
def test_landlines_normalise(area: str, number: str, separator: str) -> None:
    assert normalise_phone(f"{area}{separator}{number}") == area + number
    assert normalise_phone(f"+86 {area[1:]} {number}") == area + number
    assert normalise_phone(f"({area}){number} 转 801") == f"{area}{number};ext=801"


@given(st.from_regex(r"(1[0-2][0-9]{9}|[0-9]{1,6}|2[0-9]{10}|1[3-9][0-9]{10})", fullmatch=True))
def test_non_numbers_are_rejected(text: str) -> None:
    assume(not text.startswith("0"))
    with pytest.raises(ValueError):
        normalise_phone(text)


# From 2001-09-09 on, epoch seconds have 10 digits and epoch milliseconds 13, as exports write them.
moments = st.datetimes(min_value=datetime(2001, 9, 10), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@given(moments)
def test_every_date_format_gives_the_same_instant(moment: datetime) -> None:
    expected = moment.replace(tzinfo=CST)
    minute = expected.replace(second=0)
    m = moment
    forms = {
        m.isoformat(): expected,
        m.isoformat() + "+08:00": expected,
        expected.astimezone(UTC).isoformat().replace("+00:00", "Z"): expected,
        m.strftime("%Y-%m-%d %H:%M:%S"): expected,
        f"{m.year}/{m.month}/{m.day} {m.hour}:{m.minute:02d}": minute,
        f"{m.year}年{m.month}月{m.day}日 {m.hour}时{m.minute}分": minute,
        f"{m.year}年{m.month}月{m.day}日{m.hour}时{m.minute}分{m.second}秒": expected,
        m.strftime("%Y%m%d%H%M%S"): expected,
        m.strftime("%Y%m%d"): expected.replace(hour=0, minute=0, second=0),
        full_width(m.strftime("%Y-%m-%d %H:%M:%S")): expected,
        int(expected.timestamp() * 1000): expected,
        int(expected.timestamp()): expected,
        str(int(expected.timestamp() * 1000)): expected,
        m: expected,
    }
    for raw, want in forms.items():
        got = parse_datetime(raw)
        assert got == want, raw
        assert got.utcoffset() == timedelta(hours=8), raw
        assert got.isoformat().endswith("+08:00")


@given(moments)
def test_excel_serial_dates(moment: datetime) -> None:
    serial = (moment - datetime(1899, 12, 30)).total_seconds() / 86400
    assert parse_datetime(serial) == moment.replace(tzinfo=CST)
    assert parse_date(int(serial)) == moment.date()


@given(st.integers(min_value=2000, max_value=2099), st.sampled_from([(2, 30), (2, 31), (4, 31), (13, 1), (0, 5)]))
def test_impossible_dates_are_rejected(year: int, month_day: tuple[int, int]) -> None:
    month, day = month_day
    for text in (f"{year}-{month:02d}-{day:02d} 08:00:00", f"{year}/{month}/{day}", f"{year}{month:02d}{day:02d}"):
        with pytest.raises(ValueError, match="impossible"):
            parse_datetime(text)


@settings(max_examples=30)
@given(st.integers(min_value=24, max_value=99))
def test_impossible_hours_are_rejected(hour: int) -> None:
    for text in (f"2025-03-14 {hour}:00:00", f"2025年3月14日 {hour}时5分", f"2025/3/14 {hour}:05"):
        with pytest.raises(ValueError):
            parse_datetime(text)


@given(st.text(alphabet="abcxyz!?", min_size=1, max_size=10))
def test_garbage_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)
