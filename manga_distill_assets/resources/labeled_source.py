"""Where the labelled intent set comes from: the packaged manga set, or any CSV / JSONL / Parquet file.

A resource rather than run config, so the nightly automation and a hand-launched run read the same source.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from manga_distill_assets.data.labeled import load_labeled

PACKAGED_INTENTS = Path(__file__).resolve().parents[1] / "data" / "manga_intents.csv"


class LabeledIntentsSource(dg.ConfigurableResource):
    """A labelled file with a text and a label column and an optional split column.

    Without a split column, a deterministic stratified split is made; with `test_path`, that file is the test
    split and validation is carved from `path` (BANKING77's train.csv / test.csv layout).
    """

    path: str = str(PACKAGED_INTENTS)
    text_column: str = "text"
    label_column: str = "label"
    split_column: str | None = "split"
    test_path: str | None = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 13

    def load(self) -> pd.DataFrame:
        return load_labeled(
            Path(self.path),
            text_column=self.text_column,
            label_column=self.label_column,
            split_column=self.split_column,
            validation_fraction=self.validation_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
            test_path=Path(self.test_path) if self.test_path else None,
        )
