"""Materialising the real graph in tests: the shipped definitions with resources under a tmp folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
from manga_distill_assets.assets.intent_classifier.config import TeacherConfig
from manga_distill_assets.data.query_log import days_before
from manga_distill_assets.definitions import defs, local_resources, production_resources
from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.presets import smoke_run_config
from manga_distill_assets.resources.labeled_source import PACKAGED_INTENTS, LabeledIntentsSource
from manga_distill_assets.resources.query_log import LocalQueryLog
from tests.distill.tiny import tiny_teacher, tiny_tokenizer
from tests.s3_server import admin_client

# Where the production graph's tests keep the store and the query log on the test S3.
STORE_BUCKET = "manga-store"
LOG_BUCKET = "manga-query-logs"
LOG_PREFIX = "logs/queries"
STORE_PREFIX = "manga-distill"


# The suite's one "now": tests/conftest.py holds Dagster's clock here for the whole session, so a run that
# crosses midnight UTC still sees the day its fixtures landed as the latest partition.
CLOCK = datetime.now(UTC)


SMOKE_TEXTS_PER_LABEL = {"train": 60, "validation": 15, "test": 15}
"""The smoke graph's slice of the packaged labelled set (600, 150 and 150 of its 2,396, 302 and 302 texts):
every step scores, trains and evaluates on a fraction of the rows, and the tests read what the graph does with
its rows, not how many there are."""


def write_smoke_intents(path: Path) -> Path:
    """The first texts of each label in each split of the packaged set, in the packaged order."""
    frame = pd.read_csv(PACKAGED_INTENTS)
    limits = frame["split"].map(SMOKE_TEXTS_PER_LABEL)
    frame[frame.groupby(["label", "split"]).cumcount() < limits].to_csv(path, index=False)
    return path


def recent_days(count: int) -> list[str]:
    """Days that are valid partitions at CLOCK, oldest first, ending the day before (UTC)."""
    return days_before(CLOCK, count)


def write_day(root: Path, day: str, texts: Sequence[str], name: str = "part-0.jsonl") -> Path:
    folder = root / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"text": text, "ts": f"{day}T10:{i % 60:02d}:00Z", "session_id": f"s{i}", "locale": "en-US"}
        )
        for i, text in enumerate(texts)
    ]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Graph:
    """The shipped graph, a tmp artifact folder, the smoke slice of the labelled set (a copy a test may edit),
    a local query log we write, and one ephemeral instance."""

    root: Path
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)

    def __post_init__(self) -> None:
        self.log_root = self.root / "query_log"
        self.log_root.mkdir(parents=True, exist_ok=True)
        self.labeled_path = write_smoke_intents(self.root / "labeled.csv")
        self.resources = {
            **local_resources(self.root / "artifacts"),
            "query_log": LocalQueryLog(root=str(self.log_root)),
            "labeled_source": LabeledIntentsSource(path=str(self.labeled_path)),
        }
        self.rebuild()

    def rebuild(self) -> None:
        """Call after swapping a resource, so automation evaluates against the same resources."""
        self.defs = dg.Definitions(
            assets=list(defs.assets),
            jobs=list(defs.jobs),
            schedules=list(defs.schedules),
            sensors=list(defs.sensors),
            resources=self.resources,
        )

    def materialize(self, *keys: str, partition_key: str | None = None, raise_on_error: bool = True):
        """Materialise the named assets with the smoke preset's config for those of them that take one."""
        smoke = smoke_run_config().ops
        return dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.assets(*keys),
            partition_key=partition_key,
            instance=self.instance,
            resources=self.resources,
            run_config=dg.RunConfig(ops={key: smoke[key] for key in keys if key in smoke}),
            raise_on_error=raise_on_error,
        )

    def data_version(self, key: str, partition_key: str | None = None) -> str | None:
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(key), asset_partitions=[partition_key] if partition_key else None
            ),
            limit=1,
        ).records
        if not records:
            return None
        return records[0].asset_materialization.tags.get("dagster/data_version")

    def metadata(self, key: str, partition_key: str | None = None) -> dict:
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(key), asset_partitions=[partition_key] if partition_key else None
            ),
            limit=1,
        ).records
        return {name: value.value for name, value in records[0].asset_materialization.metadata.items()}


def as_date(day: str) -> date:
    return date.fromisoformat(day)


def run(graph: Graph, key: str, partition_key: str | None = None, config: dg.Config | None = None):
    """Materialise one asset of `graph` without raising, so a test can read the failure."""
    return dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets(key),
        partition_key=partition_key,
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={key: config} if config else {}),
        raise_on_error=False,
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    return str(failure.event_specific_data.error)


def registered_teacher(folder: Path, labels: list[str], seed: int) -> TeacherConfig:
    """A tiny checkpoint with the labelled set's labels: registering it stores a model without training."""
    model = tiny_teacher(num_labels=len(labels), seed=seed)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: index for index, label in enumerate(labels)}
    saved = save_model(model, tiny_tokenizer(folder), folder / f"teacher_seed{seed}")
    return TeacherConfig(registered_checkpoint=str(saved), min_validation_accuracy=0.0)


def production_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, **overrides: str) -> None:
    """The variables a deployment sets; the endpoint reaches boto3 through its standard variable only."""
    settings = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "MANGA_S3_BUCKET": STORE_BUCKET,
        "MANGA_S3_PREFIX": STORE_PREFIX,
        "MANGA_QUERY_LOG_S3_URI": f"s3://{LOG_BUCKET}/{LOG_PREFIX}",
        **overrides,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


def production_graph(root: Path) -> Graph:
    """The graph with the production resources that `production_env` configures."""
    graph = Graph(root)
    graph.resources = {
        **production_resources(root / "artifacts"),
        "labeled_source": graph.resources["labeled_source"],
    }
    graph.rebuild()
    return graph


def write_s3_day(endpoint: str, day: str, texts: list[str]) -> str:
    """One day of the query log on the test S3, as the production log source reads it."""
    key = f"{LOG_PREFIX}/dt={day}/part-0.jsonl"
    lines = "".join(json.dumps({"text": text, "ts": f"{day}T10:00:00Z"}) + "\n" for text in texts)
    admin_client(endpoint).put_object(Bucket=LOG_BUCKET, Key=key, Body=lines.encode())
    return key


def model_assets_through(key: str) -> tuple[str, ...]:
    """The intent graph's assets up to and including `key`, each after its inputs (MODEL_ASSETS' order)."""
    return MODEL_ASSETS[: MODEL_ASSETS.index(key) + 1]
