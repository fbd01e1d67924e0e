"""The production instance (deploy/dagster.yaml) on a real PostgreSQL: a 3-day backfill and the whole graph.

The backfill goes the way a user's does: `dagster job backfill` queues one run per day, and `dagster-daemon`
dequeues them under the instance's limits and launches each in its own process. The graph is then
materialised in this process against the same database. What is checked is what production relies on: every
run, materialisation and data version lands in Postgres and is read back by an instance that shares nothing
with the ones that wrote it, as the webserver, the daemon and the run workers do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
from manga_distill_assets.assets.intent_classifier.common import GPU_POOL
from tests.assets.harness import Graph, recent_days, write_day
from tests.postgres_server import PostgresDatabase, PostgresServer, PostgresUnavailable

pytestmark = pytest.mark.slow  # a daemon-run backfill and the smoke graph: about 3 CPU-minutes

PRODUCTION_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"
DAYS = 3
DAY_TEXTS = (
    ["is the one piece box set 4 in stock", "my jjk order is late"],
    ["recommend a manga like berserk", "where is my chainsaw man preorder"],
    ["can i return a damaged volume", "is the one piece box set 4 in stock"],
)


@dataclass
class Built:
    graph: Graph
    database: PostgresDatabase
    home: Path
    days: list[str]
    run_ids: list[str]
    backfill_run_ids: list[str]


def production_instance(home: Path) -> dg.DagsterInstance:
    """A new instance from the production yaml: its own connections, nothing cached from another."""
    return dg.DagsterInstance.from_config(str(home))


@pytest.fixture(scope="module")
def built(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    try:
        database = postgres_server.create_database("graph")
    except PostgresUnavailable as err:
        pytest.fail(str(err))
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(PRODUCTION_YAML, home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as env:
        for name, value in postgres_env(database).items():
            env.setenv(name, value)
        with production_instance(home) as instance:
            graph = Graph(tmp_path_factory.mktemp("graph"), instance=instance)
            days = recent_days(DAYS)
            for day, texts in zip(days, DAY_TEXTS, strict=True):
                write_day(graph.log_root, day, texts)
            backfill_run_ids = backfill_with_the_daemon(instance, home, graph, days)
            results = [graph.materialize("labeled_intents")]
            results.append(graph.materialize("unlabeled_queries", partition_key=days[-1]))
            results.append(graph.materialize(*MODEL_ASSETS))
            yield Built(graph, database, home, days, [result.run_id for result in results], backfill_run_ids)


def postgres_env(database: PostgresDatabase) -> dict[str, str]:
    return {
        "DAGSTER_PG_HOST": database.host,
        "DAGSTER_PG_PORT": str(database.port),
        "DAGSTER_PG_USERNAME": database.user,
        "DAGSTER_PG_PASSWORD": database.password,
        "DAGSTER_PG_DB": database.db_name,
    }


def backfill_with_the_daemon(
    instance: dg.DagsterInstance, home: Path, graph: Graph, days: list[str]
) -> list[str]:
    """Queue the days with the CLI and let a real daemon launch them; return the backfill's run ids.

    The code location reads the same folders as `graph` through the documented variables. The automation
    sensor and the nightly schedule are stopped first, as a user pausing automation for a backfill would,
    so the daemon launches nothing but the backfill's runs.
    """
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MANGA_ARTIFACTS_DIR": str(graph.root / "artifacts"),
        "MANGA_QUERY_LOG_ROOT": str(graph.log_root),
    }
    location = ["-m", "manga_distill_assets.definitions"]
    dagster = str(Path(sys.executable).with_name("dagster"))
    for command in (
        [dagster, "sensor", "stop", "content_change_automation", *location],
        [dagster, "schedule", "stop", "nightly_refresh", *location],
        [
            dagster,
            "job",
            "backfill",
            "-j",
            "land_raw_queries",
            "--partitions",
            ",".join(days),
            "--noprompt",
            *location,
        ],
    ):
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=180)
    (backfill,) = instance.get_backfills()
    runs_filter = dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id})
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", *location],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        runs = wait_for_runs(instance, runs_filter, len(days), timeout_s=300)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    return [run.run_id for run in runs]


def wait_for_runs(
    instance: dg.DagsterInstance, runs_filter: dg.RunsFilter, count: int, timeout_s: float
) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = instance.get_runs(runs_filter)
        if len(runs) == count and all(run.is_finished for run in runs):
            return runs
        if time.monotonic() > deadline:
            statuses = {run.run_id: run.status.value for run in runs}
            pytest.fail(
                f"the daemon did not finish the {count} backfill runs in {timeout_s:.0f} s: {statuses}"
            )
        time.sleep(1)


@pytest.fixture(scope="module")
def reader(built: Built) -> Iterator[dg.DagsterInstance]:
    """A second instance on the same database, as the webserver or daemon would open it."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in postgres_env(built.database).items():
            env.setenv(name, value)
        with production_instance(built.home) as instance:
            yield instance


def latest(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> dg.AssetMaterialization:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    assert records, f"no materialisation of {key} {partition or ''} in the instance"
    return records[0].asset_materialization


def test_the_production_yaml_keeps_runs_events_and_schedules_in_postgres(reader: dg.DagsterInstance):
    assert isinstance(reader.run_storage, PostgresRunStorage)
    assert isinstance(reader.event_log_storage, PostgresEventLogStorage)
    assert isinstance(reader.schedule_storage, PostgresScheduleStorage)


def test_the_production_instance_queues_runs_under_its_limits(reader: dg.DagsterInstance):
    assert isinstance(reader.run_coordinator, dg.QueuedRunCoordinator)
    queue = reader.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 4
    assert {"key": "dagster/backfill", "limit": 2} in queue.tag_concurrency_limits


def test_training_steps_took_their_slots_from_the_gpu_pool_at_its_default_limit(reader: dg.DagsterInstance):
    """Postgres creates the pool, at the yaml's default limit, when a training step first claims it."""
    pool = reader.event_log_storage.get_concurrency_info(GPU_POOL)
    assert pool.slot_count == 1
    assert pool.claimed_slots == []


def test_every_run_succeeded_and_is_recorded(built: Built, reader: dg.DagsterInstance):
    runs = reader.get_runs(dg.RunsFilter(run_ids=built.run_ids + built.backfill_run_ids))
    assert len(runs) == DAYS + 3
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}


def test_the_backfill_ran_one_run_per_day_that_the_daemon_launched(built: Built, reader: dg.DagsterInstance):
    """The queued coordinator only enqueues: a finished run means the daemon dequeued and launched it."""
    runs = reader.get_runs(dg.RunsFilter(run_ids=built.backfill_run_ids))
    assert sorted(run.tags["dagster/partition"] for run in runs) == built.days
    assert {run.job_name for run in runs} == {"land_raw_queries"}


def test_the_backfill_stored_one_materialisation_per_day_with_its_own_data_version(
    built: Built, reader: dg.DagsterInstance
):
    versions = [latest(reader, "raw_queries", day).tags["dagster/data_version"] for day in built.days]
    assert len(set(versions)) == DAYS
    assert reader.get_materialized_partitions(dg.AssetKey("raw_queries")) == set(built.days)


def test_every_model_asset_has_a_data_version_in_postgres(built: Built, reader: dg.DagsterInstance):
    for key in ("labeled_intents", "unlabeled_queries", *MODEL_ASSETS):
        partition = built.days[-1] if key == "unlabeled_queries" else None
        assert latest(reader, key, partition).tags.get("dagster/data_version"), key


def test_the_data_versions_read_back_are_those_the_runs_wrote(built: Built, reader: dg.DagsterInstance):
    for key in ("teacher_model", "student_stage2"):
        written = built.graph.data_version(key)
        assert written is not None
        assert latest(reader, key).tags["dagster/data_version"] == written


def test_the_materialisation_events_are_rows_in_the_postgres_event_log(built: Built):
    """Read with plain SQL, not through Dagster: the rows are in the database, not in a process's memory."""
    engine = sa.create_engine(built.database.url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT asset_key, partition, count(*) FROM event_logs "
                    "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY asset_key, partition"
                )
            ).all()
    finally:
        engine.dispose()
    counts = {(tuple(json.loads(asset_key)), partition): count for asset_key, partition, count in rows}
    for day in built.days:
        assert counts[(("raw_queries",), day)] == 1
    for key in MODEL_ASSETS:
        assert counts[((key,), None)] == 1
