"""The deployment files are checked by Dagster's own config schemas, so a typo fails here and not at 2 a.m."""

import importlib.util
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from manga_distill_assets.assets.experiments.studies import STUDY_VARIANTS
from manga_distill_assets.assets.intent_classifier.common import GPU_OP_TAGS, GPU_POOL
from manga_distill_assets.definitions import defs

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
INSTANCE_YAMLS = {
    "local default": REPO / "dagster.yaml",
    "production": DEPLOY / "dagster.yaml",
    "kubernetes": DEPLOY / "k8s" / "dagster.yaml",
}
TRAINING_ASSETS = (
    "general_student",
    "teacher_model",
    "teacher_refined",
    "student_stage1",
    "student_stage2",
    "baseline_student",
    "baseline_student_teacher_init",
    *STUDY_VARIANTS,
    "init_study",
    "llm_student",
    "reranker_teacher",
    "reranker_student",
    "ensemble_members",
    "ensemble_student",
    "ensemble_vs_single_teacher_study",
)
ARTIFACTS_CLAIM = DEPLOY / "k8s" / "artifacts-pvc.yaml"
INSTANCE_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_DB": "dagster",
    "MANGA_S3_BUCKET": "manga-bucket",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in INSTANCE_ENV.items():
        monkeypatch.setenv(name, value)


def load_instance_yaml(path: Path) -> dict[str, Any]:
    """Dagster's loader: the instance schema, plus the cross-field rules (pools, run queue, storage)."""
    config, _ = dagster_instance_config(str(path.parent), path.name)
    return dict(config)


def asset_op_tags(key: str) -> dict[str, str]:
    return dict(defs.resolve_assets_def(key).op.tags)


def step_pod_spec(op_tags: dict[str, str], launcher_config: dict[str, Any] | None = None):
    """The pod spec dagster-k8s would submit for a step with these op tags, on top of what the run launcher
    gives every run and step pod (as `k8s_job_executor` merges them)."""
    launcher_config = launcher_config or {}
    context = K8sContainerContext(
        env_config_maps=launcher_config.get("env_config_maps"),
        env_vars=launcher_config.get("env_vars"),
        volumes=launcher_config.get("volumes"),
        volume_mounts=launcher_config.get("volume_mounts"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher_config.get("run_k8s_config", {})),
    ).merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op_tags)))
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(
            job_image="manga-distill:test",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-test",
        user_defined_k8s_config=context.run_k8s_config,
    )
    return job.spec.template.spec


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda path: str(path.relative_to(REPO)))
def test_every_deploy_yaml_parses(path: Path):
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents and all(isinstance(document, dict) for document in documents)


@pytest.mark.parametrize("name", INSTANCE_YAMLS)
def test_instance_yamls_satisfy_dagsters_instance_schema(name: str, instance_env: None):
    config = load_instance_yaml(INSTANCE_YAMLS[name])
    assert config["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("name", INSTANCE_YAMLS)
def test_every_instance_runs_one_training_step_at_a_time_by_default(name: str, instance_env: None):
    """No yaml names the pool, so the default limit is its limit until `dagster instance concurrency set`."""
    pools = load_instance_yaml(INSTANCE_YAMLS[name])["concurrency"]["pools"]
    assert GPU_POOL not in pools
    assert pools["default_limit"] == 1


@pytest.mark.parametrize("name", ["production", "kubernetes"])
def test_production_instances_keep_everything_in_postgres_with_secrets_from_the_environment(
    name: str, instance_env: None
):
    raw = yaml.safe_load(INSTANCE_YAMLS[name].read_text())["storage"]["postgres"]["postgres_db"]
    assert raw["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert all(raw[field] == {"env": f"DAGSTER_PG_{field.upper()}"} for field in ("port", "username"))
    assert raw["scheme"] == "postgresql+psycopg2"


@pytest.mark.parametrize("name", ["production", "kubernetes"])
def test_production_instances_queue_runs_and_monitor_them(name: str, instance_env: None):
    config = load_instance_yaml(INSTANCE_YAMLS[name])
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] > 0
    assert {"dagster/backfill"} <= {limit["key"] for limit in runs["tag_concurrency_limits"]}
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"]
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0


def test_only_the_kubernetes_instance_resumes_crashed_runs(instance_env: None):
    """The default launcher's local processes cannot be resumed; K8sRunLauncher's pods can."""
    assert load_instance_yaml(INSTANCE_YAMLS["production"])["run_monitoring"]["max_resume_run_attempts"] == 0
    assert load_instance_yaml(INSTANCE_YAMLS["kubernetes"])["run_monitoring"]["max_resume_run_attempts"] > 0


def test_kubernetes_run_launcher_config_satisfies_dagster_k8s_schema(instance_env: None):
    launcher = load_instance_yaml(INSTANCE_YAMLS["kubernetes"])["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    assert result.value["postgres_password_secret"] == "dagster-postgresql-secret"


def test_kubernetes_compute_logs_go_to_the_bucket_named_in_the_environment(instance_env: None):
    compute_logs = load_instance_yaml(INSTANCE_YAMLS["kubernetes"])["compute_logs"]
    result = process_config(S3ComputeLogManager.config_type(), compute_logs["config"])
    assert result.success, result.errors
    assert result.value["bucket"] == INSTANCE_ENV["MANGA_S3_BUCKET"]


@pytest.mark.parametrize("key", TRAINING_ASSETS)
def test_training_steps_carry_the_gpu_op_tags_and_pool(key: str):
    assets_def = defs.resolve_assets_def(key)
    assert assets_def.op.pool == GPU_POOL
    assert json.loads(assets_def.op.tags["dagster-k8s/config"]) == GPU_OP_TAGS["dagster-k8s/config"]


def test_the_training_assets_are_exactly_the_gpu_pool():
    pool = {
        key.to_user_string()
        for key in defs.resolve_all_asset_keys()
        if defs.resolve_assets_def(key).op.pool == GPU_POOL
    }
    assert pool == set(TRAINING_ASSETS)


@pytest.mark.parametrize("key", TRAINING_ASSETS)
def test_a_training_step_pod_asks_for_one_gpu_on_a_gpu_node(key: str):
    spec = step_pod_spec(asset_op_tags(key))
    (container,) = spec.containers
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert spec.node_selector == {"nvidia.com/gpu.present": "true"}
    tolerations = [(t.key, t.operator, t.effect) for t in spec.tolerations]
    assert tolerations == [("nvidia.com/gpu", "Exists", "NoSchedule")]


@pytest.mark.parametrize("key", ["raw_queries", "unlabeled_queries", "teacher_soft_labels", "eval_report"])
def test_other_steps_ask_for_no_gpu(key: str):
    spec = step_pod_spec(asset_op_tags(key))
    (container,) = spec.containers
    assert "nvidia.com/gpu" not in ((container.resources and container.resources.limits) or {})
    assert not spec.node_selector


def load_kubernetes_code_location() -> dg.Definitions:
    path = DEPLOY / "k8s" / "definitions.py"
    spec = importlib.util.spec_from_file_location("manga_k8s_code_location", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.defs


def test_the_kubernetes_code_location_runs_steps_with_k8s_job_executor():
    location = load_kubernetes_code_location()
    assert location.executor is k8s_job_executor
    assert {key.to_user_string() for key in location.resolve_all_asset_keys()} == {
        key.to_user_string() for key in defs.resolve_all_asset_keys()
    }


def test_the_shipped_definitions_keep_the_default_executor():
    assert defs.executor is None


def helm_values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())


def test_helm_values_match_the_kubernetes_instance_yaml(instance_env: None):
    values = helm_values()
    instance = load_instance_yaml(INSTANCE_YAMLS["kubernetes"])
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    postgres_db = instance["storage"]["postgres"]["postgres_db"]
    assert values["postgresql"]["postgresqlScheme"] == postgres_db["scheme"]
    pools, runs = values["concurrency"]["pools"], values["concurrency"]["runs"]
    assert pools["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert runs["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["maxResumeRunAttempts"] == instance["run_monitoring"]["max_resume_run_attempts"]
    assert values["telemetry"]["enabled"] is False


def test_helm_user_deployment_serves_the_kubernetes_code_location_from_the_image():
    (deployment,) = helm_values()["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    python_file = Path(args[args.index("--python-file") + 1])
    working_directory = Path(args[args.index("--working-directory") + 1])
    assert (REPO / python_file.relative_to(working_directory)).is_file()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"WORKDIR {working_directory}" in dockerfile


def artifacts_claim() -> dict[str, Any]:
    return yaml.safe_load(ARTIFACTS_CLAIM.read_text())


def test_the_artifacts_claim_is_shared_between_nodes():
    claim = artifacts_claim()
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["metadata"]["namespace"] == "dagster"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def kubernetes_launcher_config() -> dict[str, Any]:
    return yaml.safe_load(INSTANCE_YAMLS["kubernetes"].read_text())["run_launcher"]["config"]


@pytest.mark.parametrize("key", ["teacher_soft_labels", "claude_paraphrases", *TRAINING_ASSETS])
def test_step_pods_keep_caches_and_checkpoints_on_the_artifacts_claim(key: str):
    """Every step is a fresh pod: MANGA_ARTIFACTS_DIR must point into the claim, or each step starts empty."""
    spec = step_pod_spec(asset_op_tags(key), kubernetes_launcher_config())
    (container,) = spec.containers
    claims = {
        volume.name: volume.persistent_volume_claim.claim_name
        for volume in spec.volumes
        if volume.persistent_volume_claim
    }
    mounts = {mount.name: mount.mount_path for mount in container.volume_mounts}
    (volume_name,) = [
        name for name, claim in claims.items() if claim == artifacts_claim()["metadata"]["name"]
    ]
    env = {variable.name: variable.value for variable in container.env}
    assert env["MANGA_ARTIFACTS_DIR"] == mounts[volume_name]


def test_helm_values_mount_the_same_artifacts_claim_as_the_kubernetes_instance_yaml():
    launcher = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    instance_launcher = kubernetes_launcher_config()
    assert launcher["volumes"] == instance_launcher["volumes"]
    assert launcher["volumeMounts"] == instance_launcher["volume_mounts"]
    assert launcher["envVars"] == instance_launcher["env_vars"]
