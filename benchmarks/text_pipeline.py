"""Benchmark of the text pipeline: normalise, scrub PII and deduplicate N customer queries on one core.

The queries come from a small deterministic generator of manga-store traffic: popular questions asked again
and again (exact repeats), the same question in another case, spacing or punctuation (same dedup key),
with a typo, a greeting or a "thanks" (near duplicates), a share of Japanese queries, and e-mail addresses,
phone numbers, order ids and card numbers that scrubbing turns into placeholders.

    .venv/bin/python benchmarks/text_pipeline.py            # 1,000,000 queries
    .venv/bin/python benchmarks/text_pipeline.py --n 100000
    .venv/bin/python benchmarks/text_pipeline.py --sizes 100000 1000000   # dedup throughput at each size

Prints a table and writes benchmarks/results/text_pipeline.json. Besides the timings it reports the largest
cluster, in inputs and in distinct dedup keys: the keys count is what grows if clustering starts to chain.
With `--sizes`, the sizes run smallest first in one process (so each peak RSS is that of the largest size
so far) and the JSON holds one report per size.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import resource
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from _common import RESULTS, pin_to_one_core, write_results

from manga_distill_assets.data.dedup import DedupResult, choose_bands, deduplicate
from manga_distill_assets.data.normalize import dedup_key, normalize_text
from manga_distill_assets.data.pii import scrub_pii

T = TypeVar("T")

TITLES = (
    ("One Piece", 110), ("Naruto", 72), ("Berserk", 42), ("Chainsaw Man", 20), ("Jujutsu Kaisen", 30),
    ("Attack on Titan", 34), ("Demon Slayer", 23), ("My Hero Academia", 42), ("Spy x Family", 14),
    ("Vinland Saga", 14), ("Frieren", 13), ("Dandadan", 19), ("Blue Lock", 31), ("Haikyu!!", 45),
    ("Fullmetal Alchemist", 27), ("Death Note", 12), ("Dragon Ball", 42), ("Bleach", 74), ("Monster", 18),
    ("Hunter x Hunter", 38), ("Vagabond", 37), ("Tokyo Ghoul", 14), ("Oshi no Ko", 16), ("Kaguya-sama", 28),
    ("Mob Psycho 100", 16), ("Delicious in Dungeon", 14), ("The Apothecary Diaries", 13), ("Pluto", 8),
    ("Sailor Moon", 12), ("Fruits Basket", 23), ("Nana", 21), ("Akira", 6), ("Uzumaki", 1), ("Blue Box", 20),
    ("Goodnight Punpun", 7), ("Blue Period", 16), ("Yotsuba&!", 16), ("Witch Hat Atelier", 14),
    ("Gintama", 77),
    ("Slam Dunk", 31), ("Fire Force", 34), ("Black Clover", 36), ("Kagurabachi", 7), ("Sakamoto Days", 19),
    ("Solo Leveling", 14), ("Tokyo Revengers", 31), ("Made in Abyss", 13), ("20th Century Boys", 22),
    ("Horimiya", 17), ("Komi Can't Communicate", 36), ("Dr. Stone", 26), ("The Promised Neverland", 20),
    ("Assassination Classroom", 21), ("Toilet-bound Hanako-kun", 22), ("Wotakoi", 11), ("Beastars", 22),
    ("Dorohedoro", 23), ("Claymore", 27), ("Trigun", 14), ("Cowboy Bebop", 3), ("Ghost in the Shell", 3),
    ("Lone Wolf and Cub", 28), ("Rurouni Kenshin", 28), ("Inuyasha", 56), ("Ranma 1/2", 38), ("Kingdom", 72),
    ("Golden Kamuy", 31), ("Hell's Paradise", 13), ("Undead Unluck", 24), ("Mashle", 18), ("Kaiju No. 8", 14),
)  # fmt: skip
JAPANESE_TITLES = (
    "ワンピース", "ナルト", "ベルセルク", "チェンソーマン", "呪術廻戦", "進撃の巨人",
    "鬼滅の刃", "葬送のフリーレン", "スパイファミリー", "ブルーロック", "ハイキュー!!", "怪獣8号",
)  # fmt: skip
GENRES = (
    "horror", "romance", "sports", "isekai", "fantasy", "sci-fi", "slice of life", "mystery", "comedy",
    "shojo", "seinen", "josei", "historical", "cooking", "mecha", "psychological",
)  # fmt: skip
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
COUNTRIES = (
    "Canada", "the UK", "Australia", "Germany", "France", "Japan", "Brazil", "Mexico", "India",
    "Spain", "Italy", "the Philippines", "Singapore", "New Zealand", "Ireland", "Poland", "Chile", "Korea",
)  # fmt: skip
CITIES = (
    "Seattle", "Austin", "Boston", "Denver", "Chicago", "Portland", "Miami", "Atlanta", "Toronto",
    "Dallas", "Phoenix", "Detroit", "San Diego", "Osaka", "Tokyo", "Vancouver", "Melbourne", "London",
)  # fmt: skip
FORMATS = (
    "box set", "omnibus", "hardcover", "deluxe edition", "digital edition", "paperback",
    "3-in-1 edition", "collector's edition", "artbook", "light novel",
)  # fmt: skip
VOLUME_WORDS = ("vol", "volume", "vol.", "v", "#", "book")
VOLUME_WORD_WEIGHTS = (0.45, 0.3, 0.1, 0.05, 0.05, 0.05)
# Said around the question, not part of it: they make the same question differ by more than a typo.
CONTEXTS = (
    "for my son", "for my daughter", "as a gift", "before christmas", "for a birthday next week",
    "i'm new to manga", "i live in {city}", "near {city}", "for our school library", "for my book club",
    "my friend recommended it", "i saw it on tiktok", "the last one sold out", "i'm collecting the set",
    "i need it by {month} {day}", "for my nephew who is 12", "in english", "not the digital one",
    "i checked the {city} store", "my kid is obsessed",
)  # fmt: skip
GREETINGS = ("hi ", "hello, ", "hey ", "hi there, ", "excuse me, ", "good morning, ", "quick question: ")
SIGN_OFFS = (" thanks", " thank you", " please", " thx", " asap", " thanks in advance", " cheers")
PHONE_STYLES = (
    "{0}-{1}-{2}",
    "({0}) {1}-{2}",
    "+1 {0} {1} {2}",
    "{0}.{1}.{2}",
    "090-{2}-{2}",
    "+81 90 {2} {2}",
)
NAMES = ("john", "emma", "yuki", "kenji", "sarah", "li", "maria", "alex", "sam", "aiko")
DOMAINS = ("gmail.com", "yahoo.co.jp", "outlook.com", "example.org", "icloud.com")

# (weight, phrasings) per intent. Slots: {title} {volword} {vol} {title2} {vol2} {genre} {country} {city}
# {format} {order} {email} {phone} {card} {jtitle} {digits} {month} {day}
INTENTS = (
    (20, (
        "do you have {title} {volword} {vol} in stock", "is {title} {volword} {vol} available",
        "{title} {volword} {vol} in stock?", "do you carry {title} {volword} {vol}",
        "any copies of {title} {volword} {vol} left", "can i still buy {title} {volword} {vol}",
        "is {title} {volword} {vol} sold out", "looking for {title} {volword} {vol}",
    )),
    (8, (
        "when is {title} {volword} {vol} coming out", "release date for {title} {volword} {vol}",
        "when does {title} {volword} {vol} release in english", "is {title} {volword} {vol} out yet",
        "can i preorder {title} {volword} {vol}", "when will you get {title} {volword} {vol}",
    )),
    (6, (
        "how much is the {title} {format}", "is there a {title} {format}", "price of {title} {format}",
        "is the {title} {format} on sale", "do you sell {title} as a {format}",
    )),
    (8, (
        "recommend manga like {title}", "what should i read after {title}", "manga similar to {title}",
        "i loved {title}, what next", "is {title} similar to {title2}",
        "{title} or {title2}, which is better",
        "good {genre} manga for beginners", "best {genre} manga of all time", "any new {genre} series",
        "is {title} appropriate for a 10 year old",
    )),
    (10, (
        "where is my order {order}", "has order {order} shipped yet", "my order {order} hasn't arrived",
        "tracking for order {order}", "order {order} still says processing", "when will order {order} arrive",
        "i ordered {title} {volword} {vol} on {month} {day} and it still hasn't come",
    )),
    (4, (
        "cancel my order {order}", "please cancel order {order}", "can i change the address on order {order}",
        "i want to add {title} {volword} {vol} to order {order}",
    )),
    (5, (
        "i want to return {title} {volword} {vol}", "my copy of {title} {volword} {vol} arrived damaged",
        "how do i get a refund for order {order}", "you sent me {title} {volword} {vol} instead of {vol2}",
        "{title} {volword} {vol} is missing pages",
    )),
    (3, (
        "change my email to {email}", "my email is {email} and i never got the confirmation",
        "please call me at {phone}", "update my phone number to {phone}", "my card {card} was declined",
        "send the receipt to {email}", "text me at {phone} when it ships",
    )),
    (6, (
        "do you ship to {country}", "how long does shipping to {country} take", "is there a store in {city}",
        "how much is shipping to {country}", "can you ship {title} {volword} {vol} to {country}",
        "can i pick up in {city}", "do you have free shipping to {country}",
    )),
    (4, (
        "can i pay with paypal", "do you accept apple pay", "how do i reset my password",
        "i can't log in to my account", "do you have a loyalty program", "are there any discounts this week",
        "how do gift cards work", "can i use two coupons",
    )),
    (3, (
        "{jtitle} {vol}巻 在庫ありますか", "{jtitle}の新刊はいつ発売ですか", "{jtitle}の{vol}巻はありますか",
        "注文番号{digits}の配送状況を教えてください", "{jtitle}に似ている漫画を教えて",
    )),
    (6, (
        "do you have {title} {volword} {vol} and {title2} volume {vol2}",
        "will {title} {volword} {vol} be restocked before {month} {day}",
        "is {title} {volword} {vol} the last one or is there a {vol2}",
    )),
)  # fmt: skip


def _zipf_weights(n: int, exponent: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def _slots(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


PHRASINGS = tuple(phrasing for _, phrasings in INTENTS for phrasing in phrasings)
PHRASING_WEIGHTS = np.array([weight / len(phrasings) for weight, phrasings in INTENTS for _ in phrasings])
CONTEXT_PROBABILITY = 0.25
REPEAT_PROBABILITY = 0.05
GENERATOR_CHUNK = 50_000


class QueryGenerator:
    """Deterministic manga-store traffic: the same seed gives the same queries on every machine.

    Every random choice is drawn up front as a numpy array, so a million queries take seconds.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _pick(self, options: tuple[str, ...], n: int) -> list[str]:
        return [options[i] for i in self.rng.integers(0, len(options), size=n).tolist()]

    def _titles_and_volumes(self, n: int) -> tuple[list[str], list[str]]:
        rng = self.rng
        title_index = rng.choice(len(TITLES), size=n, p=_zipf_weights(len(TITLES)))
        volumes = np.array([volumes for _, volumes in TITLES])[title_index]
        # New volumes are asked about most: the latest three take half of the volume questions.
        latest = np.maximum(1, volumes - rng.integers(0, 3, size=n))
        volume = np.where(rng.random(n) < 0.5, latest, rng.integers(1, volumes + 1))
        return [TITLES[i][0] for i in title_index.tolist()], volume.astype(str).tolist()

    def _slot_values(self, n: int) -> dict[str, list[str]]:
        rng = self.rng
        title, vol = self._titles_and_volumes(n)
        title2, vol2 = self._titles_and_volumes(n)
        order_style = rng.choice(np.array(["MA-{}", "ma-{}", "#{}", "{}"]), size=n, p=[0.45, 0.05, 0.3, 0.2])
        order_digits = rng.integers(10_000_000, 100_000_000, size=n).tolist()
        phone_groups = rng.integers((200, 100, 1000), (1000, 1000, 10000), size=(n, 3)).tolist()
        mailbox = rng.integers(0, 1000, size=n).tolist()
        return {
            "title": title,
            "vol": vol,
            "title2": title2,
            "vol2": vol2,
            "volword": [VOLUME_WORDS[i] for i in rng.choice(len(VOLUME_WORDS), n, p=VOLUME_WORD_WEIGHTS)],
            "genre": self._pick(GENRES, n),
            "country": self._pick(COUNTRIES, n),
            "city": self._pick(CITIES, n),
            "format": self._pick(FORMATS, n),
            "month": self._pick(MONTHS, n),
            "day": rng.integers(1, 29, size=n).astype(str).tolist(),
            "order": [style.format(d) for style, d in zip(order_style.tolist(), order_digits, strict=True)],
            "email": [f"{name}{box}@{domain}" for name, box, domain in zip(
                self._pick(NAMES, n), mailbox, self._pick(DOMAINS, n), strict=True)],
            "phone": [style.format(*groups) for style, groups in zip(
                self._pick(PHONE_STYLES, n), phone_groups, strict=True)],
            "card": [" ".join(map(str, groups)) for groups in rng.integers(1000, 10000, (n, 4)).tolist()],
            "jtitle": self._pick(JAPANESE_TITLES, n),
            "digits": rng.integers(10_000_000, 100_000_000, size=n).astype(str).tolist(),
        }  # fmt: skip

    def queries(self, n: int) -> list[str]:
        """`n` queries, drawn in chunks so that the random draws never hold more than a chunk in memory."""
        out: list[str] = []
        while len(out) < n:
            self._extend(out, min(GENERATOR_CHUNK, n - len(out)))
        return out

    def _extend(self, out: list[str], n: int) -> None:
        rng = self.rng
        phrasing_index = rng.choice(len(PHRASINGS), n, p=PHRASING_WEIGHTS / PHRASING_WEIGHTS.sum()).tolist()
        slots = [_slots(phrasing) for phrasing in PHRASINGS]
        context_slots = [_slots(context) for context in CONTEXTS]
        values = self._slot_values(n)
        context_index = rng.integers(0, len(CONTEXTS), size=n).tolist()
        rolls = rng.random((n, 9)).tolist()
        picks = rng.integers(0, 1 << 30, size=(n, 3)).tolist()
        for i, (phrasing, roll, pick) in enumerate(zip(phrasing_index, rolls, picks, strict=True)):
            # A customer who asks once often asks again in exactly the same words (retries, refreshes).
            if roll[7] < REPEAT_PROBABILITY and out:
                out.append(out[max(0, len(out) - 1 - pick[0] % 50)])
                continue
            template, needed = PHRASINGS[phrasing], slots[phrasing]
            if roll[8] < CONTEXT_PROBABILITY:
                context = CONTEXTS[context_index[i]]
                template = f"{template} {context}" if pick[0] % 3 else f"{context}, {template}"
                needed = needed | context_slots[context_index[i]]
            text = template.format(**{slot: values[slot][i] for slot in needed})
            out.append(self._surface(text, roll, pick))

    def _typo(self, text: str, where: float, kind: int) -> str:
        position = int(where * (len(text) - 1))
        if kind == 0:
            return text[:position] + text[position + 1 :]
        if kind == 1:
            return text[:position] + text[position + 1] + text[position] + text[position + 2 :]
        return text[:position] + text[position] + text[position:]

    def _surface(self, text: str, roll: list[float], pick: list[int]) -> str:
        """How customers actually type a question: case, punctuation, spacing, typos, politeness."""
        if roll[0] < 0.25:
            text = text.capitalize()
        elif roll[0] < 0.30:
            text = text.upper()
        if roll[1] < 0.30 and not text.endswith("?"):
            text += "?"
        if roll[2] < 0.08:
            text = self._typo(text, roll[6], pick[1] % 3)
        if roll[3] < 0.06:
            text = GREETINGS[pick[1] % len(GREETINGS)] + text
        if roll[4] < 0.06:
            text += SIGN_OFFS[pick[2] % len(SIGN_OFFS)]
        if roll[5] < 0.03:
            text = text.replace(" ", "  ", 1) if pick[2] % 2 else f" {text}\u200b"
        elif roll[5] > 0.99:
            text = text.translate(_FULL_WIDTH)
        return text


_FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)} | {0x20: 0x3000}


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


def _timed(step: Callable[[], T]) -> tuple[T, Timing]:
    """The step's result and its wall-clock and CPU time (CPU time shows contention on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def _peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 2**20 if sys.platform == "darwin" else kib / 1024


def _largest_cluster_keys(texts: Sequence[str], result: DedupResult) -> int:
    """How many distinct dedup keys the largest cluster holds."""
    distinct = set(zip(result.representative.tolist(), map(dedup_key, texts), strict=True))
    return max(Counter(representative for representative, _ in distinct).values(), default=0)


def run(n: int, seed: int) -> dict[str, Any]:
    pinning = pin_to_one_core()
    raw, generate = _timed(lambda: QueryGenerator(seed).queries(n))
    rss_before = _peak_rss_mib()
    normalised, normalise = _timed(lambda: [normalize_text(text) for text in raw])
    scrubbed, scrub = _timed(lambda: [scrub_pii(text) for text in normalised])
    result, dedup = _timed(lambda: deduplicate(scrubbed))
    stages = {"normalise": normalise, "scrub": scrub, "dedup": dedup}
    bands, rows = choose_bands(0.8, 64)
    return {
        "n": n,
        "seed": seed,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pinning": pinning,
        "lsh": {"threshold": 0.8, "num_perm": 64, "bands": bands, "rows": rows},
        "data": {
            "raw_exact_repeat_fraction": round(1 - len(set(raw)) / n, 4),
            "changed_by_scrub": sum(a != b for a, b in zip(normalised, scrubbed, strict=True)),
            "exact_removed": result.exact_removed,
            "near_removed": result.near_removed,
            "kept": len(result.kept),
            "largest_cluster_inputs": int(result.frequencies().max(initial=0)),
            "largest_cluster_distinct_keys": _largest_cluster_keys(scrubbed, result),
        },
        "dedup_queries_per_second": round(n / dedup.wall_s),
        "seconds": {
            name: {"wall": round(timing.wall_s, 2), "cpu": round(timing.cpu_s, 2)}
            for name, timing in {
                **stages,
                "total": Timing(
                    sum(timing.wall_s for timing in stages.values()),
                    sum(timing.cpu_s for timing in stages.values()),
                ),
                "generate (not in total)": generate,
            }.items()
        },
        "peak_rss_mib": {
            "after generating": round(rss_before, 1),
            "after pipeline": round(_peak_rss_mib(), 1),
        },
    }


def _print_table(report: dict[str, Any]) -> None:
    print(f"text pipeline, {report['n']:,} queries, {report['pinning']}")
    print(f"dedup throughput: {report['dedup_queries_per_second']:,} queries/s")
    print(f"\n{'stage':<26}{'wall s':>10}{'cpu s':>10}")
    for name, seconds in report["seconds"].items():
        print(f"{name:<26}{seconds['wall']:>10.2f}{seconds['cpu']:>10.2f}")
    for section in ("data", "peak_rss_mib"):
        print(f"\n{section}")
        for name, value in report[section].items():
            print(f"  {name:<30}{value:>12,}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="number of queries (default 1,000,000)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="several numbers of queries, run smallest first (overrides --n)"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "text_pipeline.json", help="where to write the JSON report"
    )
    args = parser.parse_args()
    reports = []
    for n in sorted(args.sizes or [args.n]):
        reports.append(run(n, args.seed))
        _print_table(reports[-1])
        print()
    write_results(reports[0] if len(reports) == 1 else {"runs": reports}, args.output)


if __name__ == "__main__":
    main()
