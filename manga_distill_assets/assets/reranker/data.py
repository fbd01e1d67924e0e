"""The reranker's graded pairs: each query with its retrieved candidates, graded 0-3, split three ways."""

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
from manga_distill_assets.assets.reranker.config import RerankQueriesConfig
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.data.rerank_candidates import Bm25Index, mine_dense_negatives, select_candidates
from manga_distill_assets.data.rerank_file import CheckedPairs, RerankFileError, check_rerank_pairs
from manga_distill_assets.data.rerank_pairs import SPLITS, catalogue_products, generate_queries, graded_rows
from manga_distill_assets.resources.rerank_source import RerankPairsSource


@dg.asset(
    group_name="reranker",
    code_version="1",
    kinds={"pandas", "parquet"},
    automation_condition=on_input_content_change(),
)
def rerank_queries(
    context: dg.AssetExecutionContext, config: RerankQueriesConfig, rerank_source: RerankPairsSource
) -> dg.Output[pd.DataFrame]:
    """A user's relevance file as it is, or pairs generated from the catalogue: queries from the simulator's
    kinds, BM25 candidates plus dense hard negatives, every candidate graded by the catalogue's rules."""
    try:
        checked = rerank_source.load() or _generated(context, config)
    except RerankFileError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    frame = checked.frame if "bm25_score" in checked.frame else _with_bm25(checked.frame)
    if any(checked.skipped.values()):
        context.log.warning(f"rerank_queries: skipped {checked.skipped} (docs/reranker.md, your own data)")
    counts = frame.groupby("split")["query_id"].nunique()
    return dg.Output(
        frame,
        data_version=dg.DataVersion(
            frame_fingerprint(frame, ["query_id", "query", "doc_id", "doc", "grade", "split"])
        ),
        metadata={
            "source": rerank_source.path or "generated from the catalogue",
            "pairs": len(frame),
            "documents": int(frame["doc_id"].nunique()),
            **{f"queries_{name}": int(counts.get(name, 0)) for name in SPLITS},
            "candidates_per_query": float(frame.groupby("query_id").size().mean()),
            "skipped": dg.MetadataValue.json(checked.skipped),
            "grade_counts": dg.MetadataValue.json(
                {
                    str(grade): int(count)
                    for grade, count in frame["grade"].value_counts().sort_index().items()
                }
            ),
        },
    )


def _generated(context: dg.AssetExecutionContext, config: RerankQueriesConfig) -> CheckedPairs:
    products = catalogue_products(config.formats_per_title, config.seed)
    judged = graded_rows(generate_queries(config.queries, config.seed), products, config.seed)
    context.log.info(f"rerank_queries: {judged['query_id'].nunique()} queries over {len(products)} products")
    negatives = mine_dense_negatives(judged, default_teacher_base(), config.hard_negatives)
    context.log.info(f"rerank_queries: mined hard negatives for {len(negatives)} queries")
    frame = select_candidates(judged, config.candidates, negatives, config.ensured_positives)
    checked = check_rerank_pairs(frame, "generated pairs")
    # Every generated list holds its query's best-graded products, so no row is skipped and the order holds.
    ranked = checked.frame.assign(
        bm25_score=frame["bm25_score"].to_numpy(), bm25_rank=frame["bm25_rank"].to_numpy()
    )
    return CheckedPairs(ranked, checked.skipped)


def _with_bm25(frame: pd.DataFrame) -> pd.DataFrame:
    """A user file's candidates scored by BM25 over the file's documents, for the BM25 baseline row."""
    docs = frame.drop_duplicates("doc_id").reset_index(drop=True)
    index = Bm25Index(docs["doc"].tolist())
    position = {doc: i for i, doc in enumerate(docs["doc_id"])}
    scores = pd.Series(0.0, index=frame.index)
    for _, rows in frame.groupby("query_id"):
        all_scores = index.scores(rows["query"].iloc[0])
        scores[rows.index] = [float(all_scores[position[doc]]) for doc in rows["doc_id"]]
    frame = frame.assign(bm25_score=scores)
    frame["bm25_rank"] = frame.groupby("query_id")["bm25_score"].rank(ascending=False, method="first") - 1
    return frame.astype({"bm25_rank": "int64"})
