"""The simulated query log: deterministic, realistic in volume and repetition, noisy in the expected ways."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta

import pytest

from manga_distill_assets.data.catalog import TITLES
from manga_distill_assets.data.query_simulator import LOCALE_WEIGHTS, simulate_day

WEEK_START = date(2026, 11, 2)  # a Monday


def _week(start: date, seed: int = 0) -> list[list[str]]:
    return [simulate_day(start + timedelta(days=offset), seed=seed) for offset in range(7)]


@pytest.fixture(scope="module")
def week() -> list[list[str]]:
    return _week(WEEK_START)


@pytest.fixture(scope="module")
def fortnight_lines(week) -> list[str]:
    return [line for day in week + _week(WEEK_START + timedelta(days=7)) for line in day]


def _records(lines: list[str]) -> list[dict]:
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record.get("text"), str):
            records.append(record)
    return records


def _texts(lines: list[str]) -> list[str]:
    return [record["text"] for record in _records(lines)]


def test_same_day_and_seed_give_identical_lines():
    assert simulate_day(WEEK_START, seed=3) == simulate_day(WEEK_START, seed=3)


def test_another_seed_or_day_gives_other_lines():
    assert simulate_day(WEEK_START, seed=3) != simulate_day(WEEK_START, seed=4)
    assert simulate_day(WEEK_START, seed=3) != simulate_day(WEEK_START + timedelta(days=1), seed=3)


def test_lines_are_byte_identical_in_another_process():
    script = (
        "import hashlib, datetime\n"
        "from manga_distill_assets.data.query_simulator import simulate_day\n"
        "lines = simulate_day(datetime.date(2026, 11, 2), seed=3)\n"
        "print(hashlib.sha256('\\n'.join(lines).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    here = hashlib.sha256("\n".join(simulate_day(WEEK_START, seed=3)).encode()).hexdigest()
    assert other.stdout.strip() == here


def test_well_formed_lines_hold_text_utc_timestamp_within_the_day_session_and_locale(week):
    for offset, lines in enumerate(week):
        day = WEEK_START + timedelta(days=offset)
        for record in _records(lines):
            assert set(record) == {"text", "ts", "session_id", "locale"}
            assert record["ts"].endswith("Z")
            assert datetime.fromisoformat(record["ts"]).date() == day
            assert record["locale"] in LOCALE_WEIGHTS
            assert record["session_id"]


def test_lines_are_in_time_order(week):
    stamps = [record["ts"] for record in _records(week[0])]
    assert stamps == sorted(stamps)


def test_weekends_are_busier_than_midweek():
    weeks = [_week(WEEK_START + timedelta(weeks=n), seed=1) for n in range(3)]
    saturdays = sum(len(days[5]) for days in weeks)
    tuesdays = sum(len(days[1]) for days in weeks)
    assert saturdays > 1.2 * tuesdays


def test_mean_volume_scales_the_day():
    ratio = len(simulate_day(WEEK_START, mean_volume=100)) / len(simulate_day(WEEK_START, mean_volume=400))
    assert ratio == pytest.approx(0.25, abs=0.01)


def test_thirty_to_fifty_percent_of_a_weeks_queries_repeat_an_earlier_one(week):
    texts = [text for text in _texts([line for day in week for line in day]) if text.strip()]
    repeat_rate = 1 - len(set(texts)) / len(texts)
    assert 0.3 <= repeat_rate <= 0.5


def test_popular_queries_recur_on_every_day(week):
    daily = [set(_texts(lines)) for lines in week]
    assert len(set.intersection(*daily)) >= 5


def test_near_duplicates_differ_only_in_case_punctuation_or_a_letter(week):
    texts = set(_texts(week[5]))
    folded: dict[str, set[str]] = {}
    for text in texts:
        folded.setdefault(re.sub(r"[^\w ]", "", text.casefold()).strip(), set()).add(text)
    assert sum(1 for variants in folded.values() if len(variants) > 1) >= 5


def test_a_title_appears_only_from_its_trending_day():
    newest = max(TITLES, key=lambda title: title.trending_from)
    names = [name.casefold() for name in newest.names()]
    mentions = lambda day: sum(any(n in line.casefold() for n in names) for line in simulate_day(day))  # noqa: E731
    before = [newest.trending_from - timedelta(days=offset) for offset in range(1, 8)]
    after = [newest.trending_from + timedelta(days=offset) for offset in range(3)]
    assert sum(mentions(day) for day in before) == 0
    assert all(mentions(day) > 0 for day in after)


def test_later_days_mention_titles_that_earlier_days_did_not():
    early = " ".join(simulate_day(date(2026, 6, 1))).casefold()
    late = " ".join(simulate_day(date(2026, 11, 25))).casefold()
    new_since = [t for t in TITLES if date(2026, 6, 1) < t.trending_from <= date(2026, 11, 25)]
    assert new_since
    assert any(t.name.casefold() in late and t.name.casefold() not in early for t in new_since)


def test_empty_and_very_long_texts_appear_at_low_rates(fortnight_lines):
    texts = _texts(fortnight_lines)
    empty = sum(1 for text in texts if not text.strip()) / len(texts)
    long = sum(1 for text in texts if len(text) > 2000) / len(texts)
    assert 0.001 <= empty <= 0.02
    assert 0.0005 <= long <= 0.01


def test_some_queries_are_japanese_or_spanish(week):
    texts = _texts([line for day in week for line in day])
    japanese = sum(1 for text in texts if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text)) / len(texts)
    spanish = sum(1 for text in texts if re.search(r"[¿ñ]|\b(?:pedido|tomo|envío|cuenta)\b", text)) / len(
        texts
    )
    assert 0.005 <= japanese <= 0.06
    assert 0.003 <= spanish <= 0.04


def test_each_kind_of_malformed_line_appears_at_a_low_rate(fortnight_lines):
    invalid = missing = not_string = 0
    for line in fortnight_lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            invalid += 1
            continue
        if "text" not in record:
            missing += 1
        elif not isinstance(record["text"], str):
            not_string += 1
    assert invalid and missing and not_string
    assert (invalid + missing + not_string) / len(fortnight_lines) <= 0.015


def test_some_queries_carry_emails_phone_numbers_and_order_numbers(week):
    text = "\n".join(_texts([line for day in week for line in day]))
    assert re.search(r"\b[\w.]+@example\.com\b", text)
    assert re.search(r"\b555-\d{3}-\d{4}\b", text)
    assert re.search(r"\b0[89]0-\d{4}-\d{4}\b", text)
    assert re.search(r"\bMA-\d{8}\b", text, flags=re.IGNORECASE)
    assert re.search(r"\border #\d{8}\b", text, flags=re.IGNORECASE)
