"""Filling `{slot}` templates from the catalogue, so that the slots of one template describe one product.

A template such as "Is the {title} {format} really {price}?" must get a price in that format's range and,
with `{vol}`, a volume the title has; filling slot by slot in template order lets later slots see earlier
ones.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

from manga_distill_assets.data.catalog import (
    COUNTRIES,
    DEMOGRAPHICS,
    FORMATS,
    GENRES,
    ROMAJI_SHOP_TERMS,
    STORES,
    TITLES,
    Format,
    Title,
)
from manga_distill_assets.data.intent_wording import EMAIL_NAMES, MONTHS, PROMO_CODES, WEEKDAYS


@dataclass(frozen=True)
class Filled:
    """A template with its slots filled, and the titles it mentions (query logs filter them by date)."""

    text: str
    titles: tuple[Title, ...]


@dataclass
class SlotFiller:
    """Fills `{slot}` templates from the catalogue; the slots of one template describe one consistent product.

    `order_styles` lists how order numbers are written: "MA-12345678" ("ma") or "#12345678" ("hash").
    """

    rng: random.Random
    titles: Sequence[Title] = TITLES
    title_weights: Sequence[float] | None = None
    order_styles: tuple[str, ...] = ("ma",)
    _chosen: list[Title] = field(default_factory=list, init=False, repr=False)

    def fill(self, template: str) -> Filled:
        self._chosen = []
        values: dict[str, str] = {}
        for _, slot, _, _ in string.Formatter().parse(template):
            if slot and slot not in values:
                values[slot] = self._value(slot, values)
        return Filled(template.format(**values), tuple(self._chosen))

    def _title(self, index: int) -> Title:
        while len(self._chosen) <= index:
            title = self.rng.choices(self.titles, weights=self.title_weights)[0]
            if all(title is not chosen for chosen in self._chosen):
                self._chosen.append(title)
        return self._chosen[index]

    def _title_name(self, title: Title) -> str:
        if title.aliases and self.rng.random() < 0.3:
            return self.rng.choice(title.aliases)
        return title.name

    def _value(self, slot: str, values: dict[str, str]) -> str:
        rng = self.rng
        if slot in ("title", "title2"):
            return self._title_name(self._title(0 if slot == "title" else 1))
        if slot in ("vol", "vol2"):
            volumes = max(self._title(0).volumes, 2)
            first = int(values["vol"]) if "vol" in values else None
            choices = [n for n in range(1, volumes + 1) if n != first]
            return str(rng.choice(choices))
        if slot == "next_vol":
            return str(self._title(0).volumes + rng.choice((1, 1, 1, 2)))
        if slot == "author":
            return self._title(0).author
        if slot == "publisher":
            return self._title(0).publisher
        if slot in ("format", "format2"):
            taken = values.get("format")
            return rng.choice([f.name for f in FORMATS if f.name != taken])
        if slot == "price":
            return _price(rng, _format_named(values.get("format")) or rng.choice(FORMATS))
        if slot == "order":
            return _order_number(rng, rng.choice(self.order_styles))
        if slot == "email":
            return f"{rng.choice(EMAIL_NAMES)}{rng.choice(('', str(rng.randint(1, 99))))}@example.com"
        if slot in ("page", "page2"):
            return str(rng.randint(40, 90) if slot == "page" else int(values["page"]) + rng.randint(2, 16))
        return _plain_value(rng, slot)


def _plain_value(rng: random.Random, slot: str) -> str:
    simple: dict[str, Sequence[str]] = {
        "country": COUNTRIES,
        "store": STORES,
        "genre": GENRES,
        "weekday": WEEKDAYS,
        "month": MONTHS,
        "code": PROMO_CODES,
    }
    if slot in simple:
        return rng.choice(simple[slot])
    if slot == "demo":
        return rng.choice(DEMOGRAPHICS[rng.choice(list(DEMOGRAPHICS))])
    romaji = {
        "tankobon": "tankōbon",
        "kanzenban": "kanzenban",
        "aizoban": "aizōban",
        "obi": "obi",
        "tokuten": "tokuten",
        "shikishi": "shikishi",
    }
    if slot in romaji:
        return rng.choice(ROMAJI_SHOP_TERMS[romaji[slot]])
    numbers = {"days": (2, 21), "age": (8, 16), "n": (2, 12)}
    if slot in numbers:
        return str(rng.randint(*numbers[slot]))
    raise KeyError(f"template slot {{{slot}}} has no filler; add it to SlotFiller or fix the template")


def _format_named(name: str | None) -> Format | None:
    return next((f for f in FORMATS if f.name == name), None)


def _price(rng: random.Random, product_format: Format) -> str:
    if rng.random() < 0.25:
        low, high = product_format.jpy
        return f"¥{round(rng.randint(low, high), -1):,}"
    low_usd, high_usd = product_format.usd
    return f"${int(rng.uniform(low_usd, high_usd)) + 0.99:.2f}"


def _order_number(rng: random.Random, style: str) -> str:
    digits = f"{rng.randint(10_000_000, 99_999_999)}"
    return f"#{digits}" if style == "hash" else f"MA-{digits}"
