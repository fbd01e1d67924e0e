"""Customer queries: one raw day at a time, and the 30-day deduplicated unlabeled transfer set."""

from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from manga_distill_assets.assets.automation import on_window_content_change
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.data.pii import find_pii, scrub_pii
from manga_distill_assets.data.query_log import DayNotFound
from manga_distill_assets.data.unlabeled import UNLABELED_COLUMNS, build_unlabeled_set
from manga_distill_assets.resources.query_log import QueryLogSource

WINDOW_DAYS = 30
daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-06-01", timezone="UTC")
RAW_COLUMNS = ["text", "ts", "session_id", "locale"]


@dg.asset(
    partitions_def=daily_partitions,
    group_name="queries",
    code_version="2",
    kinds={"pandas", "parquet"},
)
def raw_queries(context: dg.AssetExecutionContext, query_log: QueryLogSource) -> dg.Output[pd.DataFrame]:
    """One day of customer queries as logged.

    A day that has not landed yet fails the partition with a message naming where it was looked for, so a
    missing day is never recorded as an empty one; re-run the partition once it lands. A day that exists but
    holds no lines materialises as zero rows, flagged in metadata. Malformed lines are counted, not fatal; a
    file the reader does not recognise, or a 0-byte gzip file, fails the day naming it, so its queries are
    never silently missing from a day stored as complete.
    """
    day = date.fromisoformat(context.partition_key)
    try:
        parsed = query_log.read_day(day)
    except DayNotFound as missing:
        raise dg.Failure(
            description=f"{missing} Re-run partition {context.partition_key} once it lands."
        ) from None
    frame = parsed.rows[RAW_COLUMNS].reset_index(drop=True)
    if frame.empty:
        context.log.warning(f"{context.partition_key}: the day exists but holds no queries")
    malformed = {f"malformed_{reason}": count for reason, count in sorted(parsed.malformed.items())}
    return dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame)),
        metadata={
            "rows": len(frame),
            "lines_read": parsed.lines_read,
            "malformed": sum(parsed.malformed.values()),
            **malformed,
            "empty_day": frame.empty,
            "distinct_texts": int(frame["text"].nunique()),
        },
    )


class UnlabeledQueriesConfig(dg.Config):
    near_duplicate_threshold: float = Field(
        default=0.8,
        gt=0.0,
        le=1.0,
        description="Jaccard similarity of character 3-grams that makes a near duplicate.",
    )
    max_chars: int = Field(default=512, gt=0, description="Longer queries are dropped as noise and counted.")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="queries",
    code_version="2",
    kinds={"pandas", "parquet"},
    ins={
        "raw_queries": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-(WINDOW_DAYS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
            )
        ),
    },
    automation_condition=on_window_content_change("raw_queries"),
    check_specs=[
        dg.AssetCheckSpec("no_eval_leakage", asset="unlabeled_queries", blocking=True),
        dg.AssetCheckSpec("no_pii_residue", asset="unlabeled_queries"),
        dg.AssetCheckSpec("schema", asset="unlabeled_queries", blocking=True),
    ],
)
def unlabeled_queries(
    context: dg.AssetExecutionContext,
    config: UnlabeledQueriesConfig,
    raw_queries: pd.DataFrame,
    labeled_intents: pd.DataFrame,
):
    """The 30 days ending on this partition's day: normalised, PII-scrubbed, deduplicated, leak-free.

    The data version hashes the *set* of kept texts, not their frequencies: a new day whose queries all
    repeat earlier ones changes counts but not what the teacher would score, so nothing downstream reruns.
    """
    eval_texts = labeled_intents.loc[labeled_intents["split"].isin(["validation", "test"]), "text"].tolist()
    result = build_unlabeled_set(
        raw_queries["text"].astype(str).tolist(),
        eval_texts,
        near_duplicate_threshold=config.near_duplicate_threshold,
        max_chars=config.max_chars,
    )
    frame = result.frame
    days = sorted(context.asset_partition_keys_for_input("raw_queries"))
    top = frame.nlargest(10, "frequency")
    yield dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame, ["text"], ordered=False)),
        metadata={
            **result.steps,
            "dedup_ratio": round(result.dedup_ratio, 4),
            "window": f"{days[0]}..{days[-1]}",
            "top_queries": dg.MetadataValue.md(markdown_table(top.to_dict(orient="records"))),
        },
    )
    yield from _checks(frame, eval_texts)


def _checks(frame: pd.DataFrame, eval_texts: list[str]):
    """Independent re-checks of what the build promised (they share no code with it)."""
    eval_keys = {scrub_pii(text).casefold().strip() for text in eval_texts}
    leaked = [text for text in frame["text"] if text.casefold().strip() in eval_keys]
    yield dg.AssetCheckResult(
        check_name="no_eval_leakage",
        passed=not leaked,
        metadata={"leaked_texts": len(leaked), "examples": "; ".join(leaked[:5])},
    )
    residue = [text for text in frame["text"] if find_pii(text)]
    yield dg.AssetCheckResult(
        check_name="no_pii_residue",
        passed=not residue,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"texts_with_pii": len(residue)},
    )
    schema_ok = list(frame.columns) == UNLABELED_COLUMNS and bool((frame["frequency"] >= 1).all())
    yield dg.AssetCheckResult(
        check_name="schema",
        passed=schema_ok and not frame["text"].duplicated().any(),
        metadata={"columns": ", ".join(frame.columns), "rows": len(frame)},
    )
