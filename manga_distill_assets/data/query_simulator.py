"""A day of the store's search and chat log, simulated: the JSONL lines production would have written.

Each line is `{"text", "ts", "session_id", "locale"}`, with `ts` an ISO-8601 UTC instant inside the day.
The simulation keeps what makes real logs awkward to learn from:

- volume follows the weekday (weekends are busier) and the hour (evenings in the US, Japan and the UK);
- 30-50% of queries repeat: a Zipf-ranked pool of popular queries, stable across days, is drawn from all
  day long, and some draws come back with a changed case, punctuation or one typo;
- customers paste emails, phone numbers and order numbers ("MA-12345678", "order #12345678");
- a title is asked about only from its catalogue `trending_from` day on, and heavily in its first weeks;
- a few lines are noise: empty text, texts over 2,000 characters, Japanese and Spanish queries, and a few
  malformed lines (invalid JSON, no "text" field, a text that is not a string) for parsers to count.

Queries are written from the same templates as the labelled set, so a day can, by chance, contain a text
that equals a labelled validation or test text; building the unlabeled set removes those.

Everything is seeded from (day, seed) through sha256, never Python's salted `hash()`, so a day's lines are
byte-identical in every process.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from hashlib import sha256

from manga_distill_assets.data.catalog import TITLES, Title, titles_trending_on
from manga_distill_assets.data.intent_generator import (
    CONTEXT_SENTENCES,
    CUE_TEMPLATES,
    LABEL_WEIGHTS,
    LABELS,
    TEMPLATES,
    SlotFiller,
    add_noise,
    recase,
    with_small_talk,
    with_typos,
)

LOCALE_WEIGHTS: dict[str, float] = {
    "en-US": 0.52,
    "en-GB": 0.12,
    "ja-JP": 0.12,
    "en-CA": 0.06,
    "en-AU": 0.05,
    "es-MX": 0.04,
    "es-ES": 0.02,
    "en-IN": 0.03,
    "fr-FR": 0.02,
    "de-DE": 0.02,
}
WEEKDAY_VOLUME = (0.92, 0.88, 0.90, 0.95, 1.05, 1.22, 1.08)  # Monday first; averages 1.0
# Queries per UTC hour: US evenings (00-04), Japanese evenings (10-14) and UK evenings (18-21).
HOURLY_WEIGHTS = (7, 8, 7, 5, 3, 2, 2, 2, 3, 4, 6, 7, 7, 5, 4, 3, 4, 5, 6, 7, 6, 5, 5, 6)

POPULAR_POOL_SIZE = 240
POPULAR_RATE = 0.40
NEAR_DUPLICATE_RATE = 0.05
SESSION_REPEAT_RATE = 0.03
EMPTY_RATE = 0.006
LONG_RATE = 0.003
MALFORMED_RATE = 0.006
CONTACT_RATE = 0.05
NATIVE_LANGUAGE_RATE = {"ja-JP": 0.25, "es-MX": 0.35, "es-ES": 0.35}
LAUNCH_DAYS = 45
LAUNCH_WEIGHT = 0.45
LONG_TEXT_CHARS = 2000

# Short queries people type into a search box; with full-sentence templates they make the popular pool.
HEAD_TEMPLATES = (
    "{title}",
    "{title} vol {vol}",
    "{title} {vol}",
    "{title} box set",
    "{title} {format}",
    "{title} vol {next_vol} release date",
    "{title} {next_vol} preorder",
    "is {title} vol {vol} in stock",
    "manga like {title}",
    "where is my order",
    "track my order",
    "order status",
    "return policy",
    "how do i return an item",
    "refund status",
    "do you ship to {country}",
    "shipping to {country}",
    "free shipping",
    "international shipping",
    "forgot password",
    "reset password",
    "cant log in",
    "promo code not working",
    "card declined",
    "do you take paypal",
    "{store} store hours",
    "new releases",
    "best {genre} manga",
    "{author}",
    "{title} english",
    "{title} vol {vol} price",
    "preorder bonus",
    "gift cards",
    "points balance",
    "cancel order",
    "damaged item",
    "wrong item received",
    "{title} shikishi",
)

JAPANESE_TEMPLATES = (
    "{jp}の{vol}巻は在庫ありますか？",
    "{jp}の最新刊はいつ発売ですか",
    "{jp}の全巻セットはありますか？",
    "注文した商品がまだ届きません。注文番号は{order}です。",
    "返品したいのですが、どうすればいいですか",
    "送料はいくらですか？",
    "{jp}の特典付きの予約はできますか",
    "パスワードを忘れました",
    "クレジットカードが使えません",
    "{jp}みたいなおすすめの漫画はありますか？",
    "{jp_store}店に{jp}はありますか",
    "届いた{jp}の{vol}巻が破れていました",
)
SPANISH_TEMPLATES = (
    "¿Tienen {title} tomo {vol} en español?",
    "¿Cuánto cuesta el envío a México?",
    "Mi pedido {order} no ha llegado",
    "Quiero devolver {title} tomo {vol}",
    "¿Hacen envíos a Argentina?",
    "¿Cuándo sale el tomo {next_vol} de {title}?",
    "No puedo iniciar sesión en mi cuenta",
    "Me cobraron dos veces",
    "¿Me recomiendan algo parecido a {title}?",
)
JAPANESE_STORES = ("新宿", "秋葉原", "渋谷", "池袋", "なんば")
CONTACT_PHRASES = (
    "my number is {phone}",
    "call me at {phone}",
    "text me on {phone}",
    "my email is {email}",
    "reply to {email} please",
    "you can reach me at {phone} or {email}",
)
EMAIL_USERS = ("user", "john.doe", "jane", "otaku.dan", "mari", "k.sato", "bookworm", "nico")


@dataclass(frozen=True)
class _PopularQuery:
    text: str
    titles: tuple[Title, ...]
    weight: float


@dataclass(frozen=True)
class _Query:
    ts_ms: int
    session_id: str
    locale: str
    text: str


def simulate_day(day: date, *, seed: int = 0, mean_volume: int = 400) -> list[str]:
    """The day's log lines in time order, as raw JSONL strings (without newlines)."""
    rng = random.Random(_derived_seed(seed, day.isoformat()))
    writer = _QueryWriter(rng, day, seed)
    volume = max(1, round(mean_volume * WEEKDAY_VOLUME[day.weekday()] * rng.uniform(0.9, 1.1)))
    queries = writer.sessions(volume)
    records = sorted(queries, key=lambda query: (query.ts_ms, query.session_id))
    return [_line(rng, day, query) for query in records]


def _derived_seed(seed: int, *parts: str) -> int:
    return int.from_bytes(sha256("|".join((str(seed), *parts)).encode()).digest()[:8], "big")


class _QueryWriter:
    """Writes one day's queries: sessions of a customer each, texts drawn by the rates above."""

    def __init__(self, rng: random.Random, day: date, seed: int) -> None:
        self.rng = rng
        self.day = day
        self.titles = titles_trending_on(day)
        self.title_weights = _title_weights(self.titles, day)
        self.filler = SlotFiller(rng, self.titles, self.title_weights, order_styles=("ma", "ma", "hash"))
        pool = [entry for entry in _popular_pool(seed) if all(t.trending_from <= day for t in entry.titles)]
        self.popular = [entry.text for entry in pool]
        self.popular_weights = [entry.weight for entry in pool]
        self.locales = list(LOCALE_WEIGHTS)
        self.locale_weights = list(LOCALE_WEIGHTS.values())

    def sessions(self, volume: int) -> list[_Query]:
        queries: list[_Query] = []
        while len(queries) < volume:
            session_id = f"s-{self.rng.getrandbits(48):012x}"
            locale = self.rng.choices(self.locales, self.locale_weights)[0]
            hour = self.rng.choices(range(24), HOURLY_WEIGHTS)[0]
            ts_ms = hour * 3_600_000 + self.rng.randrange(3_600_000)
            size = 1
            while size < volume - len(queries) and self.rng.random() < 0.4:
                size += 1
            previous = None
            for _ in range(size):
                text = self._text(locale, previous)
                queries.append(_Query(min(ts_ms, 86_399_999), session_id, locale, text))
                previous = text
                ts_ms += self.rng.randint(4_000, 240_000)
        return queries

    def _text(self, locale: str, previous: str | None) -> str:
        rng = self.rng
        if previous and rng.random() < SESSION_REPEAT_RATE:
            return previous
        draw = rng.random()
        if draw < EMPTY_RATE:
            return rng.choice(("", " ", "\n"))
        if draw < EMPTY_RATE + LONG_RATE:
            return self._long_text()
        if rng.random() < NATIVE_LANGUAGE_RATE.get(locale, 0.0):
            return self._native_text(locale)
        draw = rng.random()
        if draw < POPULAR_RATE:
            return self._popular()
        if draw < POPULAR_RATE + NEAR_DUPLICATE_RATE:
            return near_duplicate(self._popular(), rng)
        return self._fresh()

    def _popular(self) -> str:
        return self.rng.choices(self.popular, self.popular_weights)[0]

    def _fresh(self) -> str:
        rng = self.rng
        label = rng.choices(LABELS, [LABEL_WEIGHTS[name] for name in LABELS])[0]
        templates = CUE_TEMPLATES[label] if rng.random() < 0.05 else TEMPLATES[label]
        text = add_noise(with_small_talk(self.filler.fill(rng.choice(templates)).text, self.filler, rng), rng)
        if rng.random() < CONTACT_RATE:
            text = f"{text} {rng.choice(CONTACT_PHRASES).format(phone=phone_number(rng), email=email(rng))}"
        return text

    def _native_text(self, locale: str) -> str:
        rng = self.rng
        title = rng.choices(self.titles, self.title_weights)[0]
        values = {
            "jp": title.japanese_name,
            "title": title.name,
            "vol": str(rng.randint(1, title.volumes)),
            "next_vol": str(title.volumes + 1),
            "order": f"MA-{rng.randint(10_000_000, 99_999_999)}",
            "jp_store": rng.choice(JAPANESE_STORES),
        }
        return rng.choice(JAPANESE_TEMPLATES if locale == "ja-JP" else SPANISH_TEMPLATES).format(**values)

    def _long_text(self) -> str:
        """A pasted email thread or rant: many sentences, far longer than any search query."""
        parts = [self.rng.choice(("Hello,", "Hi there,", "To whom it may concern,", "Dear support team,"))]
        length = len(parts[0])
        while length <= LONG_TEXT_CHARS:
            source = CONTEXT_SENTENCES if self.rng.random() < 0.4 else TEMPLATES[self.rng.choice(LABELS)]
            sentence = self.filler.fill(self.rng.choice(source)).text
            parts.append(sentence)
            length += len(sentence) + 1
        return " ".join(parts)


def _title_weights(titles: Sequence[Title], day: date) -> list[float]:
    """Popularity by catalogue rank; a title in its first weeks is asked about like a top seller."""
    weights = []
    for rank, title in enumerate(titles):
        weight = 1 / (rank + 1) ** 0.8
        if (day - title.trending_from).days < LAUNCH_DAYS:
            weight = max(weight, LAUNCH_WEIGHT)
        weights.append(weight)
    return weights


@lru_cache(maxsize=8)
def _popular_pool(seed: int) -> tuple[_PopularQuery, ...]:
    """The popular queries, stable across days: the same texts with the same Zipf weights every day."""
    rng = random.Random(_derived_seed(seed, "popular-pool"))
    filler = SlotFiller(rng, TITLES, [1 / (rank + 1) ** 0.8 for rank in range(len(TITLES))])
    sentences = [t for label in LABELS for t in TEMPLATES[label] if "{order}" not in t and "{email}" not in t]
    entries: dict[str, tuple[Title, ...]] = {}
    while len(entries) < POPULAR_POOL_SIZE:
        template = rng.choice(HEAD_TEMPLATES) if rng.random() < 0.6 else rng.choice(sentences)
        filled = filler.fill(template)
        text = filled.text.lower() if rng.random() < 0.7 else filled.text
        entries.setdefault(text, filled.titles)
    return tuple(
        _PopularQuery(text, titles, 1 / (rank + 1) ** 1.05)
        for rank, (text, titles) in enumerate(entries.items())
    )


def near_duplicate(text: str, rng: random.Random) -> str:
    """The same query typed again a little differently: case, punctuation, or one typo."""
    for _ in range(10):
        kind = rng.choice(("case", "punctuation", "typo"))
        if kind == "case":
            variant = recase(text, rng) if rng.random() < 0.5 else text.capitalize()
        elif kind == "punctuation":
            variant = (
                text.rstrip("?.!") if text.endswith(("?", ".", "!")) else text + rng.choice(("?", "??", "."))
            )
        else:
            variant = with_typos(text, rng)
        if variant != text:
            return variant
    return text + "?"


def phone_number(rng: random.Random) -> str:
    """Reserved or fictional-looking numbers in the styles customers write: US, Japanese mobile, UK."""
    a, b = rng.randint(100, 999), rng.randint(1000, 9999)
    return rng.choice(
        (
            f"555-{a}-{b}",
            f"(555) {a}-{b}",
            f"+1 555 {a} {b}",
            f"090-{rng.randint(1000, 9999)}-{b}",
            f"080-{rng.randint(1000, 9999)}-{b}",
            f"+44 7700 900{a}",
        )
    )


def email(rng: random.Random) -> str:
    return f"{rng.choice(EMAIL_USERS)}{rng.randint(1, 999)}@example.com"


def _timestamp(day: date, ts_ms: int) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(milliseconds=ts_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _line(rng: random.Random, day: date, query: _Query) -> str:
    record: dict[str, object] = {
        "text": query.text,
        "ts": _timestamp(day, query.ts_ms),
        "session_id": query.session_id,
        "locale": query.locale,
    }
    if rng.random() >= MALFORMED_RATE:
        return json.dumps(record, ensure_ascii=False)
    kind = rng.choice(("truncated", "missing_text", "non_string_text"))
    if kind == "missing_text":
        record["query"] = record.pop("text")
    elif kind == "non_string_text":
        record["text"] = rng.choice((None, 12345, [query.text], {"q": query.text}))
    line = json.dumps(record, ensure_ascii=False)
    return line[: rng.randrange(1, len(line) - 1)] if kind == "truncated" else line
