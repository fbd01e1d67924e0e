"""The one Definitions object: assets, checks, jobs, schedules, sensors and the resources of a deployment.

The embedded default needs no services: simulated query logs, the packaged labelled set, local files
under `MANGA_ARTIFACTS_DIR` (default `.artifacts`). Environment variables point the same graph elsewhere:
`MANGA_S3_BUCKET` and `MANGA_QUERY_LOG_S3_URI` select the production resources (see `production_resources`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from transformers.utils import logging as transformers_logging

from manga_distill_assets.assets.ensemble import members as ensemble_members
from manga_distill_assets.assets.ensemble import report as ensemble_report
from manga_distill_assets.assets.ensemble import soft_labels as ensemble_soft_labels
from manga_distill_assets.assets.ensemble import student as ensemble_student
from manga_distill_assets.assets.ensemble import study as ensemble_study
from manga_distill_assets.assets.ensemble.study import ENSEMBLE_STUDY_JOB
from manga_distill_assets.assets.experiments import init_study as experiment_init_study
from manga_distill_assets.assets.experiments import report as experiment_report_assets
from manga_distill_assets.assets.experiments import studies as experiment_studies
from manga_distill_assets.assets.experiments.init_study import INIT_STUDY_JOB
from manga_distill_assets.assets.experiments.studies import STUDY_JOBS
from manga_distill_assets.assets.fallback_llm import evaluation as llm_evaluation
from manga_distill_assets.assets.fallback_llm import questions as llm_questions
from manga_distill_assets.assets.fallback_llm import student as llm_student
from manga_distill_assets.assets.fallback_llm import teacher as llm_teacher
from manga_distill_assets.assets.general import student as general_student
from manga_distill_assets.assets.intent_classifier import (
    baselines,
    evaluation,
    paraphrases,
    refinement,
    soft_labels,
    students,
    teacher,
)
from manga_distill_assets.assets.intent_classifier import onnx as onnx_assets
from manga_distill_assets.assets.labeled import assets as labeled_assets
from manga_distill_assets.assets.queries import assets as query_assets
from manga_distill_assets.assets.queries.schedules import (
    land_raw_queries,
    nightly_inputs,
    nightly_refresh,
)
from manga_distill_assets.assets.reranker import data as rerank_data
from manga_distill_assets.assets.reranker import models as rerank_models
from manga_distill_assets.assets.reranker import serving as rerank_serving
from manga_distill_assets.resources.general_corpus import CORPUS_VARIABLE, general_corpus_from_env
from manga_distill_assets.resources.io_manager import S3TableIOManager, TableIOManager
from manga_distill_assets.resources.labeled_source import PACKAGED_INTENTS, LabeledIntentsSource
from manga_distill_assets.resources.logit_cache import LogitCache
from manga_distill_assets.resources.model_store import LocalModelStore, S3ModelStore
from manga_distill_assets.resources.qa_source import MangaQASource
from manga_distill_assets.resources.query_log import (
    LocalQueryLog,
    QueryLogSource,
    S3QueryLog,
    SimulatedQueryLog,
)
from manga_distill_assets.resources.rerank_source import RerankPairsSource
from manga_distill_assets.resources.workspace import TrainingWorkspace
from manga_distill_assets.settings import bedrock_resources


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


def query_log_from_env() -> QueryLogSource:
    root = os.environ.get("MANGA_QUERY_LOG_ROOT")
    return LocalQueryLog(root=root) if root else SimulatedQueryLog()


def simulated_log_with_own_labels(resources: Mapping[str, object]) -> str | None:
    """What to say when the labelled source is a file of the user's but the query log is the simulator: the
    transfer texts are then the simulated manga store's, another domain's, and the students learn less from
    them (docs/intent-on-real-data.md measures how much). Read from the resources a run gets, so every way of
    choosing them (local, production, a test's) is judged alike. Said, not refused, so a labelled file alone
    still gives a first run; None when there is nothing to say."""
    labeled, log = resources.get("labeled_source"), resources.get("query_log")
    if not isinstance(labeled, LabeledIntentsSource) or Path(labeled.path) == PACKAGED_INTENTS:
        return None
    if not isinstance(log, SimulatedQueryLog):
        return None
    return (
        "MANGA_LABELED_PATH names your labelled file, but no query log is set, so the transfer texts the "
        "students learn from are the simulated manga store's queries, not your domain's, and the students "
        "keep less of their teacher. Set MANGA_QUERY_LOG_ROOT to a folder of your own unlabelled texts "
        '(<root>/dt=YYYY-MM-DD/*.jsonl, one {"text": ...} per line; docs/running.md).'
    )


def local_resources(root: Path | None = None) -> dict[str, object]:
    """The embedded default: everything under one local folder."""
    root = root or artifacts_dir()
    return {
        "io_manager": TableIOManager(base_dir=str(root / "assets")),
        "query_log": query_log_from_env(),
        "labeled_source": labeled_source_from_env(),
        "model_store": LocalModelStore(root=str(root / "models")),
        **bedrock_resources(root),
        "logit_cache": LogitCache(path=str(root / "logit_cache.sqlite")),
        "training_workspace": TrainingWorkspace(root=str(root / "work")),
        "rerank_source": RerankPairsSource(path=os.environ.get("MANGA_RERANK_PATH", "")),
        "qa_source": MangaQASource(path=os.environ.get("MANGA_QA_PATH", "")),
        "general_corpus": general_corpus_from_env(os.environ.get(CORPUS_VARIABLE)),
    }


PRODUCTION_VARIABLES = ("MANGA_S3_BUCKET", "MANGA_QUERY_LOG_S3_URI")
DEFAULT_S3_PREFIX = "manga-distill"


def production_resources(root: Path | None = None) -> dict[str, object]:
    """The embedded default with S3 wherever the environment names it.

    `MANGA_S3_BUCKET` (with `MANGA_S3_PREFIX`, default `manga-distill`) moves asset values to
    `s3://<bucket>/<prefix>/assets/` and models to `s3://<bucket>/<prefix>/models/`, so runs on machines
    that share no disk see each other's results. `MANGA_QUERY_LOG_S3_URI=s3://bucket/prefix` reads the
    query log from S3. The paraphrase and logit caches (SQLite), the training workspace and the cache of
    downloaded models stay on local disk under `MANGA_ARTIFACTS_DIR` (a volume in Kubernetes): they are
    refilled when lost; the SQLite caches need a file system with POSIX locks and one writer at a time
    (see deploy/README.md). The S3 endpoint, region and credentials come only from boto3's standard chain
    (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_REGION`, a role or a profile), so no secret is ever
    part of the resources' configuration.
    """
    root = root or artifacts_dir()
    resources = local_resources(root)
    bucket = os.environ.get("MANGA_S3_BUCKET")
    if bucket:
        prefix = os.environ.get("MANGA_S3_PREFIX", DEFAULT_S3_PREFIX).strip("/")
        resources["io_manager"] = S3TableIOManager(bucket=bucket, prefix=f"{prefix}/assets", s3=S3Resource())
        resources["model_store"] = S3ModelStore(
            bucket=bucket, prefix=f"{prefix}/models", s3=S3Resource(), cache_dir=str(root / "model_cache")
        )
    log_uri = os.environ.get("MANGA_QUERY_LOG_S3_URI")
    if log_uri:
        resources["query_log"] = S3QueryLog.from_uri(log_uri, S3Resource(), setting="MANGA_QUERY_LOG_S3_URI")
    return resources


def resources_from_env() -> dict[str, object]:
    """`local_resources` unless a production variable is set."""
    if any(os.environ.get(name) for name in PRODUCTION_VARIABLES):
        return production_resources()
    return local_resources()


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
        [
            labeled_assets,
            query_assets,
            general_student,
            teacher,
            paraphrases,
            soft_labels,
            refinement,
            students,
            baselines,
            onnx_assets,
            evaluation,
            experiment_studies,
            experiment_init_study,
            experiment_report_assets,
            ensemble_members,
            ensemble_soft_labels,
            ensemble_student,
            ensemble_report,
            ensemble_study,
            rerank_data,
            rerank_models,
            rerank_serving,
            llm_questions,
            llm_teacher,
            llm_student,
            llm_evaluation,
        ]
    ),
    jobs=[land_raw_queries, nightly_inputs, *STUDY_JOBS, INIT_STUDY_JOB, ENSEMBLE_STUDY_JOB],
    schedules=[nightly_refresh],
    sensors=[content_change_automation],
    resources=resources_from_env(),
)
