"""Materialising the real graph in tests: the shipped definitions with resources under a tmp folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from manga_distill_assets.definitions import defs, local_resources
from manga_distill_assets.presets import smoke_run_config
from manga_distill_assets.resources.query_log import LocalQueryLog

MODEL_ASSETS = (
    "teacher_model",
    "claude_paraphrases",
    "teacher_soft_labels",
    "student_stage1",
    "student_stage2",
    "baseline_student",
    "baseline_student_teacher_init",
    "student_onnx",
    "eval_report",
)


def recent_days(count: int) -> list[str]:
    """Days that are valid partitions today, oldest first, ending yesterday (UTC)."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    return [(yesterday - timedelta(days=offset)).isoformat() for offset in reversed(range(count))]


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
    """The shipped graph, a tmp artifact folder, a local query log we write, and one ephemeral instance."""

    root: Path
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)

    def __post_init__(self) -> None:
        self.log_root = self.root / "query_log"
        self.log_root.mkdir(parents=True, exist_ok=True)
        self.resources = {
            **local_resources(self.root / "artifacts"),
            "query_log": LocalQueryLog(root=str(self.log_root)),
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
