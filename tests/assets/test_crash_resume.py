"""A stage-2 run killed with SIGKILL in the middle of an epoch, then re-materialised: it must continue from
its last checkpoint and end with the student an uninterrupted run gives.

The graph runs on a persistent instance configured by the shipped dagster.yaml (training in a pool of one), as
`make demo` and `make ui` run it. The upstream assets are materialised once; the crashed run is a real child
process; the uninterrupted run trains from a copy of the same upstream artifacts under another root.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import torch

from manga_distill_assets.assets.intent_classifier.common import GPU_POOL
from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.training import TrainingConfig
from manga_distill_assets.resources.model_store import ModelRef
from tests.assets.crash_child import CHECKPOINT_EVERY, STAGE2_STEPS, materialize_stage2
from tests.assets.harness import Graph, model_assets_through, recent_days, write_day

pytestmark = pytest.mark.slow  # trains the smoke graph and stage 2 three times: about 1.2 CPU-minutes

REPOSITORY = Path(__file__).resolve().parents[2]
UPSTREAM = model_assets_through("student_stage1")
CHECKPOINT_TIMEOUT_S = 180
LOG_EVERY = TrainingConfig.log_every
TRAINER_STATE = "trainer_state.json"
"""The Trainer writes it last into a checkpoint folder, so its presence means the checkpoint is complete."""


def build_upstream(root: Path, instance: dg.DagsterInstance) -> Graph:
    graph = Graph(root, instance=instance)
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["is the one piece box set 4 in stock", "my jjk order is late"])
    graph.materialize("labeled_intents")
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=day)
    graph.materialize(*UPSTREAM)
    return graph


def complete_checkpoints(graph: Graph) -> list[Path]:
    workspace = graph.root / "artifacts" / "work" / "student_stage2"
    return sorted(
        (state.parent for state in workspace.glob(f"*/checkpoint-*/{TRAINER_STATE}")), key=checkpoint_step
    )


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.removeprefix("checkpoint-"))


def kill_after_first_checkpoint(graph: Graph, home: Path) -> None:
    """Start stage 2 in a child process and SIGKILL it as soon as one complete checkpoint exists."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MANGA_ARTIFACTS_DIR": str(graph.root / "artifacts"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPOSITORY),
    }
    log_path = graph.root / "child.log"
    with log_path.open("w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.assets.crash_child", str(graph.root)],
            cwd=REPOSITORY,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
        while not complete_checkpoints(graph):
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                child.wait()
                tail = log_path.read_text()[-3000:]
                pytest.fail(
                    f"The stage-2 child (exit code {child.returncode}) wrote no complete checkpoint within "
                    f"{CHECKPOINT_TIMEOUT_S} s; the end of its log ({log_path}):\n{tail}"
                )
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def leave_half_written_checkpoint(last: Path) -> None:
    """What a kill during a save leaves: the next checkpoint folder with its weights and nothing else (the
    kill itself may already have left it so)."""
    half = last.with_name(f"checkpoint-{checkpoint_step(last) + CHECKPOINT_EVERY}")
    half.mkdir(exist_ok=True)
    shutil.copy(last / "model.safetensors", half / "model.safetensors")


def mark_ended(instance: dg.DagsterInstance, run_id: str) -> None:
    """What the UI does for a run whose process is gone: force-terminate it, then free its pool slots."""
    instance.report_run_canceled(instance.get_run_by_id(run_id), message="The run's process was killed.")
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    root = tmp_path_factory.mktemp("crashed")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPOSITORY / "dagster.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    graph = build_upstream(root, instance)

    whole = Graph(tmp_path_factory.mktemp("uninterrupted"))
    for stored in ("assets", "models"):
        shutil.copytree(root / "artifacts" / stored, whole.root / "artifacts" / stored)
    uninterrupted = materialize_stage2(whole)

    kill_after_first_checkpoint(graph, home)
    (killed,) = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    slots = instance.event_log_storage.get_concurrency_info(GPU_POOL)
    last = complete_checkpoints(graph)[-1]
    leave_half_written_checkpoint(last)
    mark_ended(instance, killed.run_id)
    resumed = materialize_stage2(graph)
    yield {
        "graph": graph,
        "whole": whole,
        "uninterrupted": uninterrupted,
        "resumed": resumed,
        "killed": killed,
        "slots_after_kill": slots,
        "last_checkpoint": last,
    }
    instance.dispose()


def test_the_kill_lands_in_the_middle_of_the_epoch(crash):
    assert 0 < checkpoint_step(crash["last_checkpoint"]) < STAGE2_STEPS


def test_the_killed_run_keeps_its_training_pool_slot_until_it_is_marked_ended(crash):
    """With the shipped pool limit of one, a re-materialisation would wait for this slot indefinitely."""
    assert [slot.run_id for slot in crash["slots_after_kill"].claimed_slots] == [crash["killed"].run_id]


def test_rematerialising_resumes_from_the_last_complete_checkpoint_and_skips_a_half_written_one(crash):
    metadata = crash["graph"].metadata("student_stage2")
    assert metadata["resumed_from"] == str(crash["last_checkpoint"])
    assert metadata["optimizer_steps"] == STAGE2_STEPS


def test_the_resumed_run_trains_only_the_steps_after_the_checkpoint(crash):
    graph, resumed = crash["graph"], crash["resumed"]
    logs = graph.instance.all_logs(resumed.run_id)
    steps = [
        int(match.group(1))
        for entry in logs
        if (match := re.match(r"student_stage2: step=(\d+) loss=", entry.user_message or ""))
    ]
    first = checkpoint_step(crash["last_checkpoint"]) + LOG_EVERY
    assert steps == list(range(first, STAGE2_STEPS + 1, LOG_EVERY))


def test_the_uninterrupted_run_started_from_scratch(crash):
    metadata = crash["whole"].metadata("student_stage2")
    assert metadata["resumed_from"] is None
    assert metadata["optimizer_steps"] == STAGE2_STEPS


def trained_student(graph: Graph, result: dg.ExecuteInProcessResult):
    ref = ModelRef.from_dict(result.output_for_node("student_stage2"))
    return load_model(graph.resources["model_store"].get(ref))


def test_the_resumed_student_is_stored_with_the_data_version_of_an_uninterrupted_run(crash):
    """Bit for bit the same folder: one thread, restored RNG and optimiser state, an epoch-seeded order."""
    assert crash["graph"].data_version("student_stage2") == crash["whole"].data_version("student_stage2")


def test_the_resumed_student_has_the_weights_of_an_uninterrupted_run(crash):
    resumed, _ = trained_student(crash["graph"], crash["resumed"])
    whole, _ = trained_student(crash["whole"], crash["uninterrupted"])
    expected = whole.state_dict()
    assert resumed.state_dict().keys() == expected.keys()
    differences = {
        name: (weights - expected[name]).abs().max().item() for name, weights in resumed.state_dict().items()
    }
    worst = max(differences, key=differences.__getitem__)
    assert differences[worst] < 1e-6, f"{worst} differs by {differences[worst]:.3g}"


def test_the_resumed_student_predicts_the_test_split_as_an_uninterrupted_run(crash):
    graph = crash["graph"]
    labeled = graph.defs.load_asset_value("labeled_intents", instance=graph.instance)
    texts = labeled.loc[labeled["split"] == "test", "text"].tolist()
    resumed, tokenizer = trained_student(graph, crash["resumed"])
    whole, _ = trained_student(crash["whole"], crash["uninterrupted"])
    with torch.no_grad():
        resumed_classes = predict_logits(resumed, tokenizer, texts).argmax(axis=1)
        whole_classes = predict_logits(whole, tokenizer, texts).argmax(axis=1)
    assert len(texts) >= 100
    assert resumed_classes.tolist() == whole_classes.tolist()
