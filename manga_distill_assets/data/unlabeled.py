"""The unlabeled transfer set: a window of raw query days, cleaned, scrubbed, deduplicated, leak-free.

Order matters. PII is scrubbed before deduplication, so "my email is a@x.com" and "my email is b@y.com"
collapse into one text. Evaluation texts are deduplicated *together with* the queries and placed first, so
every query that is an exact or near duplicate of a validation/test text lands in a cluster an evaluation
text represents and is removed: no leakage into evaluation, even through a typo variant. Evaluation texts are
pinned, so one that resembles another still claims its own near duplicates, and scrubbed like the queries, so
a query quoting an evaluation text's order number is still caught after its own number became <ORDER_ID>.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from manga_distill_assets.data.dedup import deduplicate
from manga_distill_assets.data.normalize import has_visible_character, normalize_text
from manga_distill_assets.data.pii import scrub_pii

UNLABELED_COLUMNS = ["text", "frequency"]


@dataclass(frozen=True)
class UnlabeledSet:
    frame: pd.DataFrame
    steps: dict[str, int] = field(default_factory=dict)

    @property
    def dedup_ratio(self) -> float:
        cleaned = self.steps.get("rows_after_cleaning", 0)
        return 1.0 - len(self.frame) / cleaned if cleaned else 0.0


def build_unlabeled_set(
    texts: Sequence[str],
    eval_texts: Sequence[str],
    *,
    near_duplicate_threshold: float = 0.8,
    max_chars: int = 512,
) -> UnlabeledSet:
    """Turn raw query texts into the deduplicated unlabeled set with each kept text's frequency."""
    normalised = [normalize_text(text) for text in texts]
    visible = [text for text in normalised if has_visible_character(text)]
    blank = sum(1 for text in normalised if not text)
    too_long = sum(1 for text in visible if len(text) > max_chars)
    kept = [text for text in visible if len(text) <= max_chars]
    scrubbed = [scrub_pii(text) for text in kept]
    eval_unique = list(dict.fromkeys(scrub_pii(normalize_text(text)) for text in eval_texts))

    n_eval = len(eval_unique)
    result = deduplicate(eval_unique + scrubbed, threshold=near_duplicate_threshold, pinned=n_eval)
    query_representative = result.representative[n_eval:]
    leaked = query_representative < n_eval
    representatives, frequency = np.unique(query_representative[~leaked], return_counts=True)
    order = np.argsort(representatives, kind="stable")
    all_texts = eval_unique + scrubbed
    frame = pd.DataFrame(
        {
            "text": [all_texts[i] for i in representatives[order]],
            "frequency": frequency[order].astype("int64"),
        },
        columns=UNLABELED_COLUMNS,
    )
    steps = {
        "rows_in": len(texts),
        "blank_dropped": blank,
        "invisible_dropped": len(normalised) - blank - len(visible),
        "too_long_dropped": too_long,
        "rows_after_cleaning": len(kept),
        "pii_scrubbed": sum(1 for before, after in zip(kept, scrubbed, strict=True) if before != after),
        "leakage_removed": int(leaked.sum()),
        "duplicates_removed": len(kept) - int(leaked.sum()) - len(frame),
        "rows_out": len(frame),
    }
    return UnlabeledSet(frame=frame, steps=steps)
