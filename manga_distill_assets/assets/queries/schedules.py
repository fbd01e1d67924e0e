"""The nightly refresh: land yesterday's queries and re-read the labelled set; automation does the rest."""

from datetime import timedelta

import dagster as dg

from manga_distill_assets.assets.labeled.assets import labeled_intents
from manga_distill_assets.assets.queries.assets import raw_queries

land_raw_queries = dg.define_asset_job(
    "land_raw_queries",
    selection=[raw_queries],
    description="Read one day of customer queries (backfill a date range with this job).",
)
nightly_inputs = dg.define_asset_job(
    "nightly_inputs",
    selection=[raw_queries, labeled_intents],
    description="Yesterday's queries and the labelled set, re-read; unchanged content requests nothing.",
)


@dg.schedule(
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    job=nightly_inputs,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_refresh(context: dg.ScheduleEvaluationContext):
    """At 02:00 UTC: yesterday's partition lands; content-change automation carries it downstream.

    Both assets are cheap to read. When their content is unchanged their data versions are too, and nothing
    downstream is requested.
    """
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"nightly:{yesterday}", partition_key=yesterday)
