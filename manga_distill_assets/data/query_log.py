"""Parsing one day of the customer query log: JSON Lines, one query object per line.

A log is written by many services over a whole day, so a few bad lines are normal. Parsing is tolerant:
every line that cannot be a query is skipped and counted by reason, never fatal, so one bad line cannot cost a
day of data, while the counts let a rising error rate show up in the day's metadata.

Reasons a line is skipped (the keys of `ParsedDay.malformed`, always all present, zero when none):

- `blank`: an empty or whitespace-only line (JSON Lines has no blank records).
- `invalid_utf8`: the bytes are not UTF-8, or a string in the line holds a lone surrogate escape
  (``"\\ud800"``) that no UTF-8 store can hold. The line is skipped rather than repaired, because a guessed
  decoding would feed the teacher text the customer never typed.
- `invalid_json`: not parseable as JSON.
- `not_an_object`: valid JSON but not an object (a list, a string, a number).
- `missing_text`: an object without a `text` field, or with `"text": null`.
- `non_string_text`: `text` is present but not a string.

An empty text (``"text": ""``) is a query the customer sent empty, not a malformed line: it is kept, and
normalisation downstream drops and counts it. Optional fields (`ts`, `session_id`, `locale`) that are absent,
null or not strings become missing values, since the text alone is what distillation needs.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

MALFORMED_REASONS = (
    "blank",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_text",
    "non_string_text",
)
OPTIONAL_FIELDS = ("ts", "session_id", "locale")
ROW_COLUMNS = ["text", *OPTIONAL_FIELDS, "source", "line"]
LOG_FILE_SUFFIXES = (".jsonl", ".jsonl.gz")
SKIPPED_PREFIXES = ("_", ".")
NAMES_SHOWN = 10
_DAY_FOLDER = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")
_PARTITION_FOLDER = re.compile(r"[^=]+=[^=]*")


class DayNotFound(LookupError):
    """The day has not landed yet: retrying later is the fix, so it is not an empty day."""

    def __init__(self, day: date | str, place: str) -> None:
        self.day = str(day)
        self.place = place
        super().__init__(f"No query log for {self.day}: nothing at {place}. The day has not landed yet.")


class CorruptLogFile(ValueError):
    """A whole file is unreadable (a truncated, empty or non-gzip `.gz`): re-delivering it is the fix."""


class UnrecognisedLogFiles(ValueError):
    """Files in a day folder that the reader cannot take for logs: skipping them would lose their queries
    without a word, and the day would be stored as complete."""


@dataclass
class ParsedDay:
    """One day's queries (columns `ROW_COLUMNS`, `line` 1-based within `source`) and what was skipped."""

    rows: pd.DataFrame
    malformed: dict[str, int]
    lines_read: int


def days_before(now: datetime, count: int) -> list[str]:
    """The `count` whole days (UTC) before `now`'s, oldest first, as ISO dates: the complete days of a daily
    log, and the day partitions a run at `now` can fill."""
    yesterday = (now.astimezone(UTC) - timedelta(days=1)).date()
    return [(yesterday - timedelta(days=offset)).isoformat() for offset in reversed(range(count))]


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            **{column: pd.Series([], dtype="str") for column in ["text", *OPTIONAL_FIELDS, "source"]},
            "line": pd.Series([], dtype="int64"),
        }
    )


def parse_query_lines(lines: Iterable[bytes | str], source: str) -> ParsedDay:
    """Parse JSON Lines one line at a time, so a day's file is never held in memory as one string."""
    if isinstance(lines, str | bytes):
        raise TypeError(f"parse_query_lines({source!r}) needs an iterable of lines; split the text first.")
    columns: dict[str, list[Any]] = {column: [] for column in ["text", *OPTIONAL_FIELDS, "line"]}
    malformed = Counter(dict.fromkeys(MALFORMED_REASONS, 0))
    lines_read = 0
    for line_number, raw in enumerate(lines, start=1):
        lines_read += 1
        record, reason = _parse_line(raw)
        if reason:
            malformed[reason] += 1
            continue
        columns["text"].append(record["text"])
        for name in OPTIONAL_FIELDS:
            columns[name].append(_optional_string(record.get(name)))
        columns["line"].append(line_number)
    return ParsedDay(rows=_rows_frame(columns, source), malformed=dict(malformed), lines_read=lines_read)


def _parse_line(raw: bytes | str) -> tuple[dict[str, Any], str | None]:
    """Return the record, or the reason the line is skipped."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return {}, "invalid_utf8"
    line = raw.removeprefix("\ufeff").strip()
    if not line:
        return {}, "blank"
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return {}, "invalid_json"
    if not isinstance(record, dict):
        return {}, "not_an_object"
    text = record.get("text")
    if text is None:
        return {}, "missing_text"
    if not isinstance(text, str):
        return {}, "non_string_text"
    if not _is_utf8_encodable(text):
        return {}, "invalid_utf8"
    return record, None


def _optional_string(value: Any) -> str | None:
    return value if isinstance(value, str) and _is_utf8_encodable(value) else None


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _rows_frame(columns: dict[str, list[Any]], source: str) -> pd.DataFrame:
    if not columns["line"]:
        return empty_rows()
    frame = pd.DataFrame(
        {
            **{name: pd.Series(columns[name], dtype="str") for name in ["text", *OPTIONAL_FIELDS]},
            "source": pd.Series([source] * len(columns["line"]), dtype="str"),
            "line": pd.Series(columns["line"], dtype="int64"),
        }
    )
    return frame[ROW_COLUMNS]


def concat_days(parts: Iterable[ParsedDay]) -> ParsedDay:
    """One day delivered as several files is still one day: rows in file order, counts summed."""
    parts = list(parts)
    malformed = Counter(dict.fromkeys(MALFORMED_REASONS, 0))
    for part in parts:
        malformed.update(part.malformed)
    frames = [part.rows for part in parts if not part.rows.empty]
    rows = pd.concat(frames, ignore_index=True) if frames else empty_rows()
    return ParsedDay(rows=rows, malformed=dict(malformed), lines_read=sum(part.lines_read for part in parts))


def is_log_file(name: str) -> bool:
    """`*.jsonl` and `*.jsonl.gz`, in any case (`PART-1.JSONL` is a log file too)."""
    return name.casefold().endswith(LOG_FILE_SUFFIXES)


def day_log_files(names: Iterable[str], place: str) -> list[str]:
    """The log files of one day to read, in name order, from paths relative to the day folder.

    Files directly in the day folder and in `key=value` sub-folders (`hour=01/part-0.jsonl`, a finer
    partition of the same day) are read. Names starting with `_` or `.`, at any level, are the markers and
    temporary files that Hadoop, Spark and Hive writers leave (`_SUCCESS`, `_temporary/`, `.part-0.crc`)
    and are skipped, as those tools skip them; so are S3 folder objects (a name ending in `/`). Any other
    file raises `UnrecognisedLogFiles` naming it: `part-1.json`, `notes.txt`, `old/part-0.jsonl`.
    """
    read, unrecognised = [], []
    for name in names:
        *folders, file_name = name.split("/")
        if not file_name or any(part.startswith(SKIPPED_PREFIXES) for part in [*folders, file_name]):
            continue
        if is_log_file(file_name) and all(_PARTITION_FOLDER.fullmatch(folder) for folder in folders):
            read.append(name)
        else:
            unrecognised.append(name)
    if unrecognised:
        unrecognised.sort()
        shown = ", ".join(unrecognised[:NAMES_SHOWN])
        more = f" and {len(unrecognised) - NAMES_SHOWN} more" if len(unrecognised) > NAMES_SHOWN else ""
        raise UnrecognisedLogFiles(
            f"{place} holds files the query-log reader does not recognise: {shown}{more}. A day is read from "
            "JSON Lines files named *.jsonl or *.jsonl.gz, directly in the day folder or in key=value "
            "sub-folders such as hour=01/. Rename JSON Lines files to match, move other files out of the "
            "day (names starting with _ or . are skipped as markers), then re-run the partition."
        )
    return sorted(read)


def parse_log_stream(stream: io.BufferedReader, name: str) -> ParsedDay:
    """Parse a plain or gzip log file given as a binary stream; `name` decides which and labels the rows."""
    with _decompressed(stream, name) as lines:
        return parse_query_lines(lines, source=name)


@contextmanager
def _decompressed(stream: io.BufferedReader, name: str) -> Iterator[io.BufferedIOBase]:
    if not name.casefold().endswith(".gz"):
        yield stream
        return
    if not stream.peek(1):
        raise CorruptLogFile(
            f"Query log file {name} is empty (0 bytes), so not a gzip file: even an empty gzip file has a "
            "header. Re-deliver it and re-run the day."
        )
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
            yield unzipped
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise CorruptLogFile(
            f"Query log file {name} is not a complete gzip file ({err}); re-deliver it and re-run the day."
        ) from err


def read_day_folder(folder: Path) -> ParsedDay:
    """Every log file of a day folder (see `day_log_files`), sorted by path; rows name their file by the
    path relative to the folder.

    A missing folder is a day not landed yet (`DayNotFound`); a folder without lines is a real, empty day;
    a file the reader does not recognise fails the day (`UnrecognisedLogFiles`) rather than being skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DayNotFound(_day_label(folder), str(folder))
    names = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if not path.is_dir()]
    return concat_days(_read_file(folder / name, name) for name in day_log_files(names, str(folder)))


def _read_file(path: Path, name: str) -> ParsedDay:
    with path.open("rb") as stream:
        return parse_log_stream(stream, name)


def _day_label(folder: Path) -> str:
    match = _DAY_FOLDER.fullmatch(folder.name)
    return match.group(1) if match else folder.name
