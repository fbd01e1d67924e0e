"""Where the manga QA set comes from: generated from the catalogue, or a user's CSV / JSONL / Parquet."""

from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from manga_distill_assets.data.manga_qa import MAX_QUESTION_CHARS, generate_manga_qa, load_qa


class MangaQASource(dg.ConfigurableResource):
    """`path` empty: the set generated from the catalogue and store policies. Otherwise a file with question,
    answer and facts columns (facts as a list or `|`-separated) and an optional split column."""

    path: str = ""
    question_column: str = "question"
    answer_column: str = "answer"
    facts_column: str = "facts"
    split_column: str | None = "split"
    max_question_chars: int = Field(default=MAX_QUESTION_CHARS, gt=0)
    seed: int = 13

    def load(self) -> pd.DataFrame:
        if not self.path:
            return generate_manga_qa(seed=self.seed)
        return load_qa(
            Path(self.path),
            question_column=self.question_column,
            answer_column=self.answer_column,
            facts_column=self.facts_column,
            split_column=self.split_column,
            max_question_chars=self.max_question_chars,
            seed=self.seed,
        )
