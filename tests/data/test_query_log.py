"""Parsing the query log: tolerant of bad lines, exact about what it kept and what it skipped."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from manga_distill_assets.data.query_log import (
    MALFORMED_REASONS,
    CorruptLogFile,
    DayNotFound,
    UnrecognisedLogFiles,
    days_before,
    parse_query_lines,
    read_day_folder,
)

GOOD = b'{"text": "is vol 3 in stock", "ts": "2026-06-01T08:00:00Z", "session_id": "s1", "locale": "en-US"}'
OTHER = b'{"text": "ship to tokyo"}'


def _write(path: Path, lines: list[bytes]) -> None:
    payload = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)


def test_a_valid_line_becomes_a_row_with_every_field() -> None:
    parsed = parse_query_lines([GOOD], source="a.jsonl")

    assert parsed.rows.to_dict(orient="records") == [
        {
            "text": "is vol 3 in stock",
            "ts": "2026-06-01T08:00:00Z",
            "session_id": "s1",
            "locale": "en-US",
            "source": "a.jsonl",
            "line": 1,
        }
    ]
    assert parsed.lines_read == 1
    assert sum(parsed.malformed.values()) == 0


def test_absent_null_or_non_string_optional_fields_are_missing_values() -> None:
    line = b'{"text": "hi", "ts": 1717228800, "session_id": null}'

    row = parse_query_lines([line], source="a.jsonl").rows.iloc[0]

    assert row["text"] == "hi"
    assert pd.isna(row["ts"]) and pd.isna(row["session_id"]) and pd.isna(row["locale"])


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (b"", "blank"),
        (b"   \t", "blank"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"text": "caf\xe9"}', "invalid_utf8"),
        (b'{"text": "\\ud800 lone surrogate"}', "invalid_utf8"),
        (b'{"text": "unterminated', "invalid_json"),
        (b"text=hello", "invalid_json"),
        (b'["text", "hello"]', "not_an_object"),
        (b'"hello"', "not_an_object"),
        (b"42", "not_an_object"),
        (b'{"query": "hello"}', "missing_text"),
        (b'{"text": null}', "missing_text"),
        (b'{"text": 42}', "non_string_text"),
        (b'{"text": ["a", "b"]}', "non_string_text"),
    ],
)
def test_a_malformed_line_is_skipped_and_counted_under_its_reason(bad_line: bytes, reason: str) -> None:
    parsed = parse_query_lines([GOOD, bad_line, OTHER], source="a.jsonl")

    assert parsed.rows["text"].tolist() == ["is vol 3 in stock", "ship to tokyo"]
    assert parsed.rows["line"].tolist() == [1, 3]
    assert parsed.malformed == {name: int(name == reason) for name in MALFORMED_REASONS}
    assert parsed.lines_read == 3


def test_an_empty_text_is_kept_not_malformed() -> None:
    parsed = parse_query_lines([b'{"text": ""}'], source="a.jsonl")

    assert parsed.rows["text"].tolist() == [""]
    assert sum(parsed.malformed.values()) == 0


def test_str_lines_with_newlines_parse_like_bytes() -> None:
    as_bytes = parse_query_lines([GOOD + b"\r\n", OTHER + b"\n"], source="a.jsonl")
    as_str = parse_query_lines([GOOD.decode() + "\r\n", OTHER.decode() + "\n"], source="a.jsonl")

    pd.testing.assert_frame_equal(as_bytes.rows, as_str.rows)


def test_a_byte_order_mark_does_not_cost_the_first_line() -> None:
    parsed = parse_query_lines(["\ufeff" + OTHER.decode()], source="a.jsonl")

    assert parsed.rows["text"].tolist() == ["ship to tokyo"]


def test_lines_are_consumed_from_a_one_pass_iterator() -> None:
    lines = (b'{"text": "q%d"}' % number for number in range(5))

    parsed = parse_query_lines(lines, source="stream")

    assert parsed.rows["text"].tolist() == ["q0", "q1", "q2", "q3", "q4"]


def test_a_whole_text_instead_of_lines_is_refused() -> None:
    with pytest.raises(TypeError, match="iterable of lines"):
        parse_query_lines(GOOD.decode(), source="a.jsonl")


def test_no_lines_give_an_empty_table_with_the_row_columns() -> None:
    parsed = parse_query_lines([], source="a.jsonl")

    assert parsed.rows.empty
    assert list(parsed.rows.columns) == ["text", "ts", "session_id", "locale", "source", "line"]
    assert parsed.lines_read == 0


def test_a_day_folder_concatenates_plain_and_gzip_files_in_name_order(tmp_path: Path) -> None:
    _write(tmp_path / "part-b.jsonl", [b'{"text": "b1"}', b'{"text": "b2"}'])
    _write(tmp_path / "part-a.jsonl.gz", [b'{"text": "a1"}', b"not json", b'{"text": "a3"}'])
    _write(tmp_path / "part-c.jsonl.gz", [b'{"text": "c1"}'])

    parsed = read_day_folder(tmp_path)

    assert parsed.rows["text"].tolist() == ["a1", "a3", "b1", "b2", "c1"]
    assert parsed.rows["source"].tolist() == [
        "part-a.jsonl.gz",
        "part-a.jsonl.gz",
        "part-b.jsonl",
        "part-b.jsonl",
        "part-c.jsonl.gz",
    ]
    assert parsed.rows["line"].tolist() == [1, 3, 1, 2, 1]
    assert parsed.lines_read == 6
    assert parsed.malformed["invalid_json"] == 1


def test_markers_and_temporary_files_of_log_writers_are_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "queries.jsonl", [OTHER])
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / ".queries.jsonl.crc").write_bytes(b"\x00\x01")
    (tmp_path / "_temporary").mkdir()
    _write(tmp_path / "_temporary" / "part-9.jsonl", [b'{"text": "half written"}'])

    assert read_day_folder(tmp_path).rows["text"].tolist() == ["ship to tokyo"]


def test_log_file_names_are_recognised_in_any_case(tmp_path: Path) -> None:
    _write(tmp_path / "part-1.JSONL", [b'{"text": "upper"}'])
    (tmp_path / "part-2.Jsonl.GZ").write_bytes(gzip.compress(b'{"text": "mixed"}\n'))

    assert read_day_folder(tmp_path).rows["text"].tolist() == ["upper", "mixed"]


def test_files_in_key_value_sub_folders_are_read_and_named_by_their_path(tmp_path: Path) -> None:
    _write(tmp_path / "part-0.jsonl", [b'{"text": "top"}'])
    for hour in ("01", "02"):
        (tmp_path / f"hour={hour}").mkdir()
        _write(tmp_path / f"hour={hour}" / "part-0.jsonl.gz", [b'{"text": "at %s"}' % hour.encode()])

    parsed = read_day_folder(tmp_path)

    assert parsed.rows["text"].tolist() == ["at 01", "at 02", "top"]
    assert parsed.rows["source"].tolist() == [
        "hour=01/part-0.jsonl.gz",
        "hour=02/part-0.jsonl.gz",
        "part-0.jsonl",
    ]


def test_files_the_reader_does_not_recognise_fail_the_day_naming_each(tmp_path: Path) -> None:
    _write(tmp_path / "queries.jsonl", [OTHER])
    _write(tmp_path / "part-1.json", [b'{"text": "lost"}'])
    _write(tmp_path / "notes.txt", [b"hello"])
    (tmp_path / "old").mkdir()
    _write(tmp_path / "old" / "part-0.jsonl", [OTHER])

    with pytest.raises(UnrecognisedLogFiles) as raised:
        read_day_folder(tmp_path)

    message = str(raised.value)
    names = "notes.txt, old/part-0.jsonl, part-1.json"
    assert f"{tmp_path} holds files the query-log reader does not recognise: {names}." in message
    assert "Rename JSON Lines files to match" in message


def test_a_zero_byte_gzip_file_fails_naming_it(tmp_path: Path) -> None:
    _write(tmp_path / "part-0.jsonl", [OTHER])
    (tmp_path / "part-1.jsonl.gz").write_bytes(b"")

    with pytest.raises(CorruptLogFile, match=r"part-1\.jsonl\.gz is empty \(0 bytes\)"):
        read_day_folder(tmp_path)


def test_non_utf8_bytes_in_a_gzip_file_are_counted_not_fatal(tmp_path: Path) -> None:
    _write(tmp_path / "q.jsonl.gz", [b'{"text": "\xe3\x81\x82"}', b'{"text": "\x82\xa0"}'])

    parsed = read_day_folder(tmp_path)

    assert parsed.rows["text"].tolist() == ["あ"]
    assert parsed.malformed["invalid_utf8"] == 1


def test_a_missing_day_folder_is_a_day_not_found_naming_day_and_path(tmp_path: Path) -> None:
    folder = tmp_path / "dt=2026-06-02"

    with pytest.raises(DayNotFound) as raised:
        read_day_folder(folder)

    assert "2026-06-02" in str(raised.value)
    assert str(folder) in str(raised.value)
    assert raised.value.day == "2026-06-02"


def test_an_existing_folder_without_files_is_an_empty_day(tmp_path: Path) -> None:
    parsed = read_day_folder(tmp_path)

    assert parsed.rows.empty
    assert "text" in parsed.rows.columns
    assert parsed.lines_read == 0


def test_empty_files_are_an_empty_day(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b""))

    parsed = read_day_folder(tmp_path)

    assert parsed.rows.empty
    assert parsed.lines_read == 0


def test_a_truncated_gzip_file_fails_naming_the_file(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(b'{"text": "q%d"}\n' % number for number in range(100)))
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])

    with pytest.raises(CorruptLogFile, match=r"cut\.jsonl\.gz"):
        read_day_folder(tmp_path)


def test_the_days_before_a_moment_are_whole_utc_days_oldest_first_and_never_today() -> None:
    # 00:30 on 2 March in Tokyo is still 1 March in UTC
    just_after_midnight_in_tokyo = datetime(2026, 3, 2, 0, 30, tzinfo=timezone(timedelta(hours=9)))
    assert days_before(just_after_midnight_in_tokyo, 3) == ["2026-02-26", "2026-02-27", "2026-02-28"]
