"""Graded (query, product) pairs for the reranker, generated from the catalogue.

A product is one edition of a title (a title in one format); its passage is what a product page shows: the
title, the format, the creators, the demographic, the genre, the volume count, the publisher and the
Japanese title, in that order so that a cut at the reranker's token limit loses the least useful words
first. The catalogue has no synopses, so passages carry none.

Queries are what customers type into the search box, in four kinds, and each kind grades every product on
0-3 by the rule the store's merchandisers would apply:

- title ("jjk box set", "frieren", "one pice vol 3"): 3 the title (in the asked format, when one is asked),
  2 the title in another format or another title by the same creator, 1 the same genre, 0 anything else;
- creator ("books by gege akutami"): 3 their titles, 1 a genre sharing a word with one they write, 0 anything
  else;
- genre ("best horror manga", "seinen fantasy omnibus"): 2 the genre, 3 when the asked demographic or format
  matches too, 1 a genre sharing a word ("dark fantasy" for "fantasy"), 0 anything else;
- similar ("manga like berserk"): 2 another title of the genre, 3 with the same demographic too, 1 a genre
  sharing a word, 0 the title itself and anything else.

Titles come as customers write them: the full name, a fan abbreviation, a partial title, lower case, or with a
typo. Everything is seeded, so the same seed gives byte-identical rows in every process.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from manga_distill_assets.data.catalog import FORMATS, TITLES, Title
from manga_distill_assets.data.intent_generator import with_typos

MAX_GRADE = 3
SPLITS = ("train", "validation", "test")
PAIR_COLUMNS = ["query_id", "query", "doc_id", "doc", "grade", "split"]
QUERY_KINDS = {"title": 0.5, "creator": 0.15, "genre": 0.15, "similar": 0.2}
ASKED_FORMATS = (
    "paperback",
    "box set",
    "omnibus",
    "deluxe hardcover",
    "digital edition",
    "collector's edition",
)
TITLE_TEMPLATES = (
    "{title}",
    "{title} manga",
    "{title} vol {vol}",
    "{title} {format}",
    "buy {title} {format}",
)
CREATOR_TEMPLATES = ("{creator}", "{creator} manga", "books by {creator}", "manga by {creator}")
GENRE_TEMPLATES = (
    "best {genre} manga",
    "{demographic} {genre} manga",
    "{genre} manga {format}",
    "{genre} manga",
)
SIMILAR_TEMPLATES = ("manga like {title}", "something similar to {title}", "if i liked {title} what next")


@dataclass(frozen=True)
class Product:
    doc_id: str
    title: Title
    format: str

    @property
    def passage(self) -> str:
        t = self.title
        return (
            f"{t.name}, {self.format}. By {t.author}. {t.demographic} {t.genre}, {t.volumes} volumes. "
            f"{t.publisher}. {t.japanese_name}"
        )


@dataclass(frozen=True)
class Intent:
    """What a query asks for, from which every product's grade follows."""

    kind: str
    title: Title | None = None
    creator: str = ""
    genre: str = ""
    demographic: str = ""
    format: str = ""


def catalogue_products(formats_per_title: int = 4, seed: int = 0) -> list[Product]:
    """Each title in paperback and `formats_per_title - 1` other formats drawn by the seed."""
    rng = random.Random(seed)
    others = [f.name for f in FORMATS if f.name != "paperback"]
    products = []
    for title in TITLES:
        for name in ["paperback", *sorted(rng.sample(others, max(0, formats_per_title - 1)))]:
            products.append(Product(f"{_slug(title.name)}::{_slug(name)}", title, name))
    return products


def grade(intent: Intent, product: Product) -> int:
    """The merchandisers' grade (module docstring) of `product` for a query with `intent`."""
    title = product.title
    if intent.kind == "title":
        if title == intent.title:
            return 3 if not intent.format or intent.format == product.format else 2
        if _creators(title) & _creators(intent.title):
            return 2
        return 1 if title.genre == intent.title.genre else 0
    if intent.kind == "creator":
        if intent.creator in _creators(title):
            return 3
        written = [other.genre for other in TITLES if intent.creator in _creators(other)]
        return 1 if any(_shares_genre_word(title.genre, genre) for genre in written) else 0
    if intent.kind == "genre":
        if title.genre == intent.genre:
            extra = (intent.demographic and title.demographic == intent.demographic) or (
                intent.format and product.format == intent.format
            )
            return 3 if extra else 2
        return 1 if _shares_genre_word(title.genre, intent.genre) else 0
    if title == intent.title:
        return 0
    if title.genre == intent.title.genre:
        return 3 if title.demographic == intent.title.demographic else 2
    return 1 if _shares_genre_word(title.genre, intent.title.genre) else 0


def generate_queries(count: int, seed: int = 0) -> list[tuple[str, Intent]]:
    """`count` distinct (query text, intent) pairs, titles drawn by catalogue popularity."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(TITLES))]
    kinds, kind_weights = list(QUERY_KINDS), list(QUERY_KINDS.values())
    queries: dict[str, Intent] = {}
    for _ in range(count * 50):
        if len(queries) >= count:
            break
        title = rng.choices(TITLES, weights)[0]
        text, intent = _query(rng.choices(kinds, kind_weights)[0], title, rng)
        queries.setdefault(text, intent)
    return list(queries.items())


def graded_rows(
    queries: Sequence[tuple[str, Intent]], products: Sequence[Product], seed: int = 0
) -> pd.DataFrame:
    """Every (query, product) with its grade and a split drawn per query (70/15/15): the full judgement
    table that candidate generation selects from. A query no product is relevant to is left out."""
    rng = random.Random(seed)
    rows = []
    for number, (text, intent) in enumerate(queries):
        split = rng.choices(SPLITS, (0.7, 0.15, 0.15))[0]
        grades = [grade(intent, product) for product in products]
        if not any(grades):
            continue  # e.g. "manga like Monster": no other title shares its genre
        for product, value in zip(products, grades, strict=True):
            rows.append((f"q{number:05d}", text, product.doc_id, product.passage, value, split))
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _query(kind: str, title: Title, rng: random.Random) -> tuple[str, Intent]:
    if kind == "title":
        asked = rng.choice(ASKED_FORMATS)
        template = rng.choice(TITLE_TEMPLATES)
        text = template.format(title=_written(title, rng), vol=rng.randint(1, title.volumes), format=asked)
        return _noisy(text, rng), Intent("title", title, format=asked if "{format}" in template else "")
    if kind == "creator":
        creator = rng.choice(sorted(_creators(title)))
        text = rng.choice(CREATOR_TEMPLATES).format(creator=creator)
        return _noisy(text, rng), Intent("creator", creator=creator)
    if kind == "genre":
        template = rng.choice(GENRE_TEMPLATES)
        asked = rng.choice(ASKED_FORMATS) if "{format}" in template else ""
        demographic = title.demographic if "{demographic}" in template else ""
        text = template.format(genre=title.genre, demographic=demographic, format=asked)
        return _noisy(text, rng), Intent("genre", genre=title.genre, demographic=demographic, format=asked)
    text = rng.choice(SIMILAR_TEMPLATES).format(title=_written(title, rng))
    return _noisy(text, rng), Intent("similar", title)


def _written(title: Title, rng: random.Random) -> str:
    """The title as a customer writes it: full, an alias, or the first words of a long name."""
    words = re.split(r"[\s:]+", title.name)
    options = [title.name, *title.aliases]
    if len(words) > 2:
        options.append(" ".join(words[:2]))
    return rng.choice(options)


def _noisy(text: str, rng: random.Random) -> str:
    if rng.random() < 0.2:
        text = with_typos(text, rng)
    return text.lower() if rng.random() < 0.7 else text


def _creators(title: Title) -> set[str]:
    return {name.strip() for name in title.author.split(" and ")}


def _shares_genre_word(first: str, second: str) -> bool:
    return bool(set(first.split()) & set(second.split()))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
