"""The labelled intent set: hard labels for training and the held-out splits for evaluation."""

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.markdown import frame_markdown
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.data.labeled import LabeledDataError, label_names
from manga_distill_assets.resources.labeled_source import LabeledIntentsSource

LABELED_COLUMNS = ["text", "label", "split"]


@dg.asset(
    group_name="labeled",
    code_version="1",
    kinds={"pandas", "parquet"},
    check_specs=[dg.AssetCheckSpec("split_integrity", asset="labeled_intents", blocking=True)],
)
def labeled_intents(context: dg.AssetExecutionContext, labeled_source: LabeledIntentsSource):
    """~3K labelled queries, 10 intents, a fixed stratified train / validation / test split.

    The nightly schedule re-reads the source; an unchanged file keeps its data version and requests nothing.
    """
    try:
        frame = labeled_source.load()
    except LabeledDataError as error:
        raise dg.Failure(description=str(error)) from error
    frame = frame[LABELED_COLUMNS].reset_index(drop=True)
    counts = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
    yield dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame)),
        metadata={
            "source": labeled_source.path,
            "rows": len(frame),
            "labels": len(label_names(frame)),
            **{
                f"rows_{split}": int((frame["split"] == split).sum())
                for split in ("train", "validation", "test")
            },
            "per_label": dg.MetadataValue.md(frame_markdown(counts, index_name="label")),
        },
    )
    yield _split_integrity(frame)


def _split_integrity(frame: pd.DataFrame) -> dg.AssetCheckResult:
    """No text in two splits, and every label present in train: evaluation must not see training texts."""
    keys = frame["text"].str.casefold().str.strip()
    splits_per_text = frame.assign(key=keys).groupby("key")["split"].nunique()
    shared = int((splits_per_text > 1).sum())
    missing_in_train = sorted(set(frame["label"]) - set(frame.loc[frame["split"] == "train", "label"]))
    return dg.AssetCheckResult(
        check_name="split_integrity",
        passed=shared == 0 and not missing_in_train,
        metadata={
            "texts_in_several_splits": shared,
            "labels_missing_from_train": ", ".join(missing_in_train),
        },
    )
