"""Paraphrases of the labelled train texts: more transfer data in the store's own voice."""

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.intent_classifier.common import split
from manga_distill_assets.assets.intent_classifier.config import ParaphraseConfig
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.resources.paraphraser import Paraphraser

PARAPHRASE_COLUMNS = ["source_text", "label", "text"]


@dg.asset(
    group_name="intent_classifier",
    code_version="1",
    kinds={"pandas", "bedrock"},
    automation_condition=on_input_content_change(),
)
def claude_paraphrases(
    context: dg.AssetExecutionContext,
    config: ParaphraseConfig,
    labeled_intents: pd.DataFrame,
    paraphraser: Paraphraser,
) -> dg.Output[pd.DataFrame]:
    """About five paraphrases per train text. Answers are cached by (backend, model, prompt version, text, n),
    so a re-materialisation sends only texts never sent before; the rest come from the cache."""
    train = split(labeled_intents, "train").drop_duplicates("text")
    if config.max_source_texts:
        train = train.head(config.max_source_texts)
    batch = paraphraser.paraphrase(train["text"].tolist(), n=config.per_text, log=context.log)
    rows = [
        (source, label, text)
        for source, label in zip(train["text"], train["label"], strict=True)
        for text in batch.paraphrases.get(source, [])
    ]
    frame = pd.DataFrame(rows, columns=PARAPHRASE_COLUMNS)
    return dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame)),
        metadata={
            "source_texts": len(train),
            "paraphrases": len(frame),
            "sent": batch.sent,
            "cached": batch.cached,
            "dropped": batch.dropped,
            "retries": batch.retries,
            "unusable_answers": batch.unusable,
            "input_tokens": batch.input_tokens,
            "output_tokens": batch.output_tokens,
            "estimated_cost_usd": round(batch.estimated_cost_usd, 4),
            "backend": type(paraphraser).__name__,
        },
    )
