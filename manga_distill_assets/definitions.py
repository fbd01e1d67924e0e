"""The one Definitions object: assets, checks, jobs, schedules, sensors and the resources of a deployment.

The embedded default needs no services: simulated query logs, the packaged labelled set, local files
under `MANGA_ARTIFACTS_DIR` (default `.artifacts`). Environment variables point the same graph elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from transformers.utils import logging as transformers_logging

from manga_distill_assets.assets.intents import assets as intent_assets
from manga_distill_assets.assets.models import evaluation, paraphrases, soft_labels, students, teacher
from manga_distill_assets.assets.queries import assets as query_assets
from manga_distill_assets.assets.queries.schedules import (
    land_raw_queries,
    nightly_inputs,
    nightly_refresh,
)
from manga_distill_assets.resources.io_manager import TableIOManager
from manga_distill_assets.resources.labeled_source import PACKAGED_INTENTS, LabeledIntentsSource
from manga_distill_assets.resources.logit_cache import LogitCache
from manga_distill_assets.resources.model_store import LocalModelStore
from manga_distill_assets.resources.paraphraser import BedrockParaphraser, OfflineParaphraser, Paraphraser
from manga_distill_assets.resources.query_log import LocalQueryLog, QueryLogSource, SimulatedQueryLog
from manga_distill_assets.resources.workspace import TrainingWorkspace


def artifacts_dir() -> Path:
    return Path(os.environ.get("MANGA_ARTIFACTS_DIR", ".artifacts"))


def labeled_source_from_env() -> LabeledIntentsSource:
    """`MANGA_LABELED_*` variables point the graph at another labelled file without a code change."""
    env = os.environ
    split_column = env.get("MANGA_LABELED_SPLIT_COLUMN", "split")
    return LabeledIntentsSource(
        path=env.get("MANGA_LABELED_PATH", str(PACKAGED_INTENTS)),
        text_column=env.get("MANGA_LABELED_TEXT_COLUMN", "text"),
        label_column=env.get("MANGA_LABELED_LABEL_COLUMN", "label"),
        split_column=split_column or None,
        test_path=env.get("MANGA_LABELED_TEST_PATH") or None,
    )


def paraphraser_from_env(root: Path) -> Paraphraser:
    """`MANGA_PARAPHRASER=bedrock` sends train texts (PII scrubbed) to Claude on Bedrock; credentials come
    only from the standard AWS chain."""
    cache_path = str(root / "paraphrase_cache.sqlite")
    if os.environ.get("MANGA_PARAPHRASER", "offline") == "bedrock":
        return BedrockParaphraser(
            cache_path=cache_path,
            model_id=os.environ.get(
                "MANGA_BEDROCK_MODEL_ID", BedrockParaphraser.model_fields["model_id"].default
            ),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
        )
    return OfflineParaphraser(cache_path=cache_path)


def query_log_from_env() -> QueryLogSource:
    root = os.environ.get("MANGA_QUERY_LOG_ROOT")
    return LocalQueryLog(root=root) if root else SimulatedQueryLog()


def local_resources(root: Path | None = None) -> dict[str, object]:
    """The embedded default: everything under one local folder."""
    root = root or artifacts_dir()
    return {
        "io_manager": TableIOManager(base_dir=str(root / "assets")),
        "query_log": query_log_from_env(),
        "labeled_source": labeled_source_from_env(),
        "model_store": LocalModelStore(root=str(root / "models")),
        "paraphraser": paraphraser_from_env(root),
        "logit_cache": LogitCache(path=str(root / "logit_cache.sqlite")),
        "training_workspace": TrainingWorkspace(root=str(root / "work")),
    }


# Training progress reaches the run log through the core's progress callback; tqdm bars in captured stderr
# would only bury it.
transformers_logging.disable_progress_bar()

content_change_automation = dg.AutomationConditionSensorDefinition(
    "content_change_automation",
    target=dg.AssetSelection.all(),
    use_user_code_server=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Requests an asset only when the content it reads has changed (see assets/automation.py).",
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [intent_assets, query_assets, teacher, paraphrases, soft_labels, students, evaluation]
    ),
    jobs=[land_raw_queries, nightly_inputs],
    schedules=[nightly_refresh],
    sensors=[content_change_automation],
    resources=local_resources(),
)
