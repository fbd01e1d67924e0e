"""The labelled manga-store intent set: ten intents, written the way customers type.

Run `python -m manga_distill_assets.data.intent_generator` to rewrite `manga_intents.csv` beside this file.
The output depends on the seed alone, so the committed CSV can always be regenerated and checked.

Intents. Five that any shop's assistant answers (product_inquiry, order_status, shipping, return_request,
recommendation), and five that a manga shop's inbox adds: preorder (new volumes sell on
preorder, with bonuses and release dates), payment_issue (declined cards, double charges, konbini and
cash-on-delivery payment), account_help (log-in, points, wishlists), store_availability (stock online and in
the physical stores) and complaint (damaged box sets, wrong volumes, bad service, with no request attached).

Difficulty is deliberate. The templates share words across the confusable pairs (shipping vs order_status,
return_request vs order_status and complaint, product_inquiry vs recommendation, preorder and
store_availability vs product_inquiry), and about 8% of rows are hard on purpose (`kind` in
`generate_intent_rows`):

- "cue" rows: near-identical phrasings whose label rests on one small cue. "My refund for order ... hasn't
  arrived" is a return, "my order ... hasn't arrived" an order question, and the same with "unacceptable"
  a complaint; "when will my order ship" is order_status, "when will orders placed today ship" shipping;
  and a volume number past the last published one turns "do you have Berserk vol 43" into a preorder
  (only the catalogue knows where the published run ends).
- "multi" rows: two requests in one message, in either order, labelled with the one an agent must act on
  first (`URGENCY`: a complaint before a payment problem before a return, and so on down to a
  recommendation).

Typos, casing, dropped punctuation, small talk that borrows other intents' words, romaji fillers and the odd
emoji come on top. With about one row in six hard, the MiniLM-L6 teacher fine-tuned by `make demo` (three
epochs) scored 94.4-95.7% on validation and 94.0-94.7% on test in two runs; `ambiguous_fraction` moves the
difficulty.

The wording (templates, word lists, label weights and urgency) lives in CSV files beside this module, read by
`intent_wording`; `slot_filling` fills a template's `{slots}` from the catalogue and `typing_noise` adds the
typos and casing. This module only plans the rows and composes them.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from manga_distill_assets.data.catalog import LABELLED_AS_OF, titles_trending_on
from manga_distill_assets.data.intent_wording import (
    CLOSERS,
    CONTEXT_SENTENCES,
    CUE_TEMPLATES,
    LABEL_WEIGHTS,
    LABELS,
    OPENERS,
    SIDE_CONNECTORS,
    SIDE_QUESTIONS,
    TEMPLATES,
    URGENCY,
)
from manga_distill_assets.data.labeled import stratified_split, text_key
from manga_distill_assets.data.slot_filling import Filled, SlotFiller
from manga_distill_assets.data.typing_noise import add_noise, add_typo, recase, with_typos

__all__ = [
    "CONTEXT_SENTENCES",
    "CUE_TEMPLATES",
    "INTENTS_CSV",
    "LABELS",
    "LABEL_WEIGHTS",
    "TEMPLATES",
    "Filled",
    "SlotFiller",
    "add_noise",
    "add_typo",
    "generate_intent_rows",
    "generate_intents",
    "main",
    "recase",
    "with_small_talk",
    "with_typos",
]


INTENTS_CSV = Path(__file__).with_name("manga_intents.csv")
MIN_WORDS, MAX_WORDS = 3, 40


def _word_count_ok(text: str) -> bool:
    return MIN_WORDS <= len(text.split()) <= MAX_WORDS


@dataclass(frozen=True)
class _Row:
    text: str
    label: str
    kind: str


def _label_targets(total: int) -> dict[str, int]:
    scale = total / sum(LABEL_WEIGHTS.values())
    targets = {label: round(weight * scale) for label, weight in LABEL_WEIGHTS.items()}
    targets[LABELS[0]] += total - sum(targets.values())
    return targets


def _hard_row_plan(rng: random.Random, total: int, ambiguous_fraction: float) -> list[tuple[str, str]]:
    """(label, kind) of each hard row: three fifths single-cue phrasings, two fifths two-request messages."""
    n_hard = round(total * ambiguous_fraction)
    n_multi = n_hard * 2 // 5
    cue_labels = [label for label in LABELS for _ in CUE_TEMPLATES[label]]
    plan = [(rng.choice(cue_labels), "cue") for _ in range(n_hard - n_multi)]
    plan += [(rng.choice(URGENCY[:-1]), "multi") for _ in range(n_multi)]
    return plan


def with_small_talk(text: str, filler: SlotFiller, rng: random.Random, context_rate: float = 0.25) -> str:
    """Greetings, background and sign-offs around the request, as customers write them."""
    if rng.random() < context_rate:
        text = f"{filler.fill(rng.choice(CONTEXT_SENTENCES)).text} {text}"
    if rng.random() < 0.12:
        text = f"{rng.choice(OPENERS)} {text[0].lower()}{text[1:]}"
    if rng.random() < 0.1:
        text = f"{text} {rng.choice(CLOSERS)}"
    return text


def _compose(label: str, kind: str, filler: SlotFiller, rng: random.Random) -> str:
    if kind == "cue":
        return add_noise(filler.fill(rng.choice(CUE_TEMPLATES[label])).text, rng, typo_rate=0.12)
    main = filler.fill(rng.choice(TEMPLATES[label])).text
    if kind == "multi":
        less_urgent = rng.choice(URGENCY[URGENCY.index(label) + 1 :])
        other = filler.fill(rng.choice(TEMPLATES[less_urgent] + SIDE_QUESTIONS[less_urgent])).text
        first, second = (main, other) if rng.random() < 0.5 else (other, main)
        return add_noise(
            first.rstrip("?.!") + rng.choice(SIDE_CONNECTORS) + second[0].lower() + second[1:], rng
        )
    return add_noise(with_small_talk(main, filler, rng), rng)


def generate_intents(seed: int = 7, total: int = 3000, *, ambiguous_fraction: float = 0.16) -> pd.DataFrame:
    """The labelled set: columns text, label, split; deterministic for (seed, total, ambiguous_fraction)."""
    rows = generate_intent_rows(seed, total, ambiguous_fraction=ambiguous_fraction)
    return rows[["text", "label", "split"]]


def generate_intent_rows(
    seed: int = 7, total: int = 3000, *, ambiguous_fraction: float = 0.16
) -> pd.DataFrame:
    """The labelled set with a `kind` column (regular, cue or multi) saying which rows are hard on purpose."""
    rng = random.Random(seed)
    titles = titles_trending_on(LABELLED_AS_OF)
    filler = SlotFiller(rng, titles, title_weights=[1 / (rank + 1) ** 0.5 for rank in range(len(titles))])
    plan = _hard_row_plan(rng, total, ambiguous_fraction)
    hard_per_label = {label: sum(1 for name, _ in plan if name == label) for label in LABELS}
    for label, target in _label_targets(total).items():
        plan += [(label, "regular")] * max(target - hard_per_label[label], 0)

    rows: list[_Row] = []
    seen: set[str] = set()
    for label, kind in plan:
        for _attempt in range(200):
            text = _compose(label, kind, filler, rng)
            if _word_count_ok(text) and text_key(text) not in seen:
                seen.add(text_key(text))
                rows.append(_Row(text, label, kind))
                break
        else:
            raise RuntimeError(f"could not write a new '{label}' ({kind}) text; add templates for it")
    rng.shuffle(rows)
    splits = stratified_split(
        [row.text for row in rows],
        [f"{row.label}/{row.kind}" for row in rows],
        validation_fraction=0.1,
        test_fraction=0.1,
        seed=seed,
    )
    return pd.DataFrame(
        {
            "text": [row.text for row in rows],
            "label": [row.label for row in rows],
            "split": splits,
            "kind": [row.kind for row in rows],
        }
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rewrite the packaged labelled manga intent set.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--total", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=INTENTS_CSV)
    args = parser.parse_args(argv)
    frame = generate_intents(seed=args.seed, total=args.total)
    frame.to_csv(args.out, index=False, lineterminator="\n")
    counts = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
    print(f"wrote {len(frame)} rows to {args.out}\n{counts.to_string()}")


if __name__ == "__main__":
    main()
