"""The questions: the manga QA set, and the prompts the teacher answers for the student to learn from."""

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.fallback_llm.config import LlmPromptsConfig
from manga_distill_assets.assets.markdown import frame_markdown
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.data.labeled import text_key
from manga_distill_assets.data.manga_qa import QA_COLUMNS, QADataError
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.qa_source import MangaQASource

PROMPT_COLUMNS = ["question", "origin"]


@dg.asset(group_name="fallback_llm", code_version="1", kinds={"pandas", "parquet"})
def manga_qa(qa_source: MangaQASource) -> dg.Output[pd.DataFrame]:
    """Questions with a reference answer and the facts it must state, split train / validation / test; the
    held-out questions ask about trained items in phrasings training never saw."""
    try:
        frame = qa_source.load()
    except QADataError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    frame = frame[QA_COLUMNS].reset_index(drop=True)
    counts = frame.groupby(["kind", "split"]).size().unstack(fill_value=0)
    return dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame)),
        metadata={
            "source": qa_source.path or "generated from the catalogue and store policies",
            "rows": len(frame),
            **{
                f"rows_{split}": int((frame["split"] == split).sum())
                for split in ("train", "validation", "test")
            },
            "per_kind": dg.MetadataValue.md(frame_markdown(counts, index_name="kind")),
        },
    )


@dg.asset(
    group_name="fallback_llm",
    code_version="1",
    kinds={"pandas", "parquet"},
    ins={"unlabeled_queries": dg.AssetIn(partition_mapping=dg.LastPartitionMapping())},
    automation_condition=on_input_content_change(),
)
def llm_prompts(
    context: dg.AssetExecutionContext,
    config: LlmPromptsConfig,
    manga_qa: pd.DataFrame,
    unlabeled_queries: pd.DataFrame,
    teacher_model: dict,
    model_store: ModelStore,
) -> dg.Output[pd.DataFrame]:
    """Train questions plus the recent real queries the intent classifier routes to the free-text path, so
    the student learns the traffic it will serve; nothing that is an evaluation question.

    The data version hashes the set of questions: a new day whose routed queries are all known changes
    nothing here, so nothing is sent to the teacher.
    """
    routed = _routed_queries(unlabeled_queries, teacher_model, model_store, config)
    held_out = {text_key(question) for question in manga_qa.loc[manga_qa["split"] != "train", "question"]}
    candidates = [(question, "train") for question in manga_qa.loc[manga_qa["split"] == "train", "question"]]
    candidates += [(query, "routed_query") for query in routed]
    seen: set[str] = set()
    rows, leaked = [], 0
    for question, origin in candidates:
        key = text_key(question)
        if key in held_out:
            leaked += 1
        elif key not in seen:
            seen.add(key)
            rows.append((question, origin))
    frame = pd.DataFrame(rows, columns=PROMPT_COLUMNS)
    context.log.info(f"llm_prompts: {len(frame)} prompts, {len(routed)} routed queries, {leaked} held out")
    return dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame, ["question"], ordered=False)),
        metadata={
            "prompts": len(frame),
            "from_train": int((frame["origin"] == "train").sum()),
            "from_routed_queries": int((frame["origin"] == "routed_query").sum()),
            "routed_queries_seen": len(routed),
            "dropped_as_eval_questions": leaked,
            "free_text_intents": ", ".join(config.free_text_intents),
        },
    )


def _routed_queries(
    unlabeled: pd.DataFrame, classifier: dict, store: ModelStore, config: LlmPromptsConfig
) -> list[str]:
    """The most frequent queries the intent classifier sends to the free-text path."""
    if config.max_real_queries == 0 or unlabeled.empty:
        return []
    ref = ModelRef.from_dict(classifier)
    unknown = sorted(set(config.free_text_intents) - set(ref.label_map.values()))
    if unknown:
        raise dg.Failure(
            description=f"llm_prompts: free_text_intents {unknown} are not intents of the classifier "
            f"({sorted(ref.label_map.values())}). Fix free_text_intents in the run config.",
            allow_retries=False,
        )
    model, tokenizer = load_model(store.get(ref))
    texts = unlabeled.sort_values("frequency", ascending=False, kind="stable")["text"].tolist()
    predicted = predict_logits(model, tokenizer, texts).argmax(axis=1)
    wanted = {int(key) for key, label in ref.label_map.items() if label in config.free_text_intents}
    return [text for text, label in zip(texts, predicted, strict=True) if int(label) in wanted][
        : config.max_real_queries
    ]
