"""Security promises: credentials never reach what a run records, pickled weights are never loaded, and the
UI listens only on the loopback interface unless someone decides otherwise."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from dagster_webserver.cli import DEFAULT_WEBSERVER_HOST

from manga_distill_assets.distill.artifacts import ModelFolderError, load_model
from tests.assets.harness import (
    LOG_BUCKET,
    STORE_BUCKET,
    Graph,
    failure_message,
    production_env,
    production_graph,
    recent_days,
    registered_teacher,
    run,
    write_s3_day,
)
from tests.distill.tiny import tiny_teacher, tiny_tokenizer
from tests.s3_server import admin_client, allow, enforced_iam

REPOSITORY = Path(__file__).resolve().parents[1]
CANARY_KEY_ID = "CANARYKEYID-manga-never-logged"
CANARY_SECRET = "canary-secret-manga-never-logged"
UI_COMMAND = re.compile(r"(dagster dev|dg dev|dagster-webserver)\b(?P<args>.*)")
HOST_FLAG = re.compile(r"(?:-h|--host|--dagit-host)[ =](\S+)")
LOOPBACK = {"127.0.0.1", "localhost"}


def recorded_text(instance: dg.DagsterInstance) -> str:
    """Everything the instance keeps about its runs: the runs themselves and every event of each."""
    parts = []
    for record in instance.get_run_records():
        parts.append(serialize_value(record.dagster_run))
        parts.extend(serialize_value(entry) for entry in instance.all_logs(record.dagster_run.run_id))
    return "\n".join(parts)


def test_credentials_never_reach_the_event_log_metadata_or_output(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    for bucket in (STORE_BUCKET, LOG_BUCKET):
        admin_client(s3_endpoint).create_bucket(Bucket=bucket)
    (day,) = recent_days(1)
    write_s3_day(s3_endpoint, day, ["is the one piece box set 4 in stock", "my jjk order is late"])
    production_env(monkeypatch, s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    graph = production_graph(tmp_path)
    labels = sorted(run(graph, "labeled_intents").output_for_node("labeled_intents")["label"].unique())
    assert run(graph, "teacher_model", config=registered_teacher(tmp_path, labels, seed=0)).success
    assert run(graph, "raw_queries", partition_key=day).success
    with enforced_iam(s3_endpoint, [allow(["s3:*"], "*")]):
        rejected = failure_message(run(graph, "raw_queries", partition_key=day))

    captured = capfd.readouterr()
    recorded = recorded_text(graph.instance) + captured.out + captured.err
    assert "credentials were rejected" in rejected and "InvalidAccessKeyId" in recorded
    assert CANARY_KEY_ID not in recorded
    assert CANARY_SECRET not in recorded


class _WritesAMarkerWhenUnpickled:
    """What a hostile checkpoint can do: run code the moment its pickle is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def pickled_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A complete model folder whose only weights are a pytorch_model.bin that runs code when unpickled."""
    folder = tmp_path / "downloaded_teacher"
    tiny_teacher().config.save_pretrained(folder)
    tiny_tokenizer(tmp_path).save_pretrained(folder)
    marker = tmp_path / "code_ran"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_WritesAMarkerWhenUnpickled(marker)))
    return folder, marker


def test_a_model_folder_with_only_pytorch_model_bin_is_refused_unread(
    pickled_checkpoint: tuple[Path, Path],
) -> None:
    folder, marker = pickled_checkpoint

    with pytest.raises(ModelFolderError) as refused:
        load_model(folder)

    message = str(refused.value)
    assert f"{folder} holds pytorch_model.bin but no *.safetensors weights" in message
    assert "Pickled weights can run code" in message and "save_pretrained" in message
    assert not marker.exists()


def test_registering_a_pickled_checkpoint_fails_the_teacher_unread(
    pickled_checkpoint: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, marker = pickled_checkpoint
    graph = Graph(tmp_path / "graph")
    graph.materialize("labeled_intents")
    config = registered_teacher(tmp_path, ["unused"], seed=0).model_copy(
        update={"registered_checkpoint": str(folder)}
    )

    message = failure_message(run(graph, "teacher_model", config=config))

    assert f"{folder} holds pytorch_model.bin but no *.safetensors weights" in message
    assert not marker.exists()


def _ui_commands(path: Path) -> list[str]:
    return [match.group(0) for line in path.read_text().splitlines() if (match := UI_COMMAND.search(line))]


def test_make_ui_binds_the_webserver_to_loopback() -> None:
    makefile = (REPOSITORY / "Makefile").read_text()
    recipe = re.search(r"^ui:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)

    assert recipe is not None, "the Makefile has no ui target"
    assert re.search(r"dagster dev .*-h 127\.0\.0\.1\b", recipe.group(1))


@pytest.mark.parametrize(
    "document",
    [
        "Makefile",
        "README.md",
        *sorted(path.relative_to(REPOSITORY).as_posix() for path in REPOSITORY.glob("docs/*.md")),
    ],
)
def test_documented_ui_commands_bind_only_to_loopback(document: str) -> None:
    hosts = [host for command in _ui_commands(REPOSITORY / document) for host in HOST_FLAG.findall(command)]

    assert set(hosts) <= LOOPBACK, f"{document} starts the UI on {sorted(set(hosts) - LOOPBACK)}"


def test_a_ui_command_without_a_host_listens_on_loopback() -> None:
    """`dg dev` and `dagster dev` pass no host unless given one, so the webserver's default decides."""
    assert DEFAULT_WEBSERVER_HOST == "127.0.0.1"
