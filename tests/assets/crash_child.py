"""Materialises `student_stage2` in a process of its own, so that a test can SIGKILL it mid-training.

Run as `python -m tests.assets.crash_child ROOT` from the repository root with DAGSTER_HOME set: it opens the
persistent instance there and the graph's local resources under ROOT, exactly as the test's parent does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported

import dagster as dg
import torch

from manga_distill_assets.assets.intent_classifier.config import Stage2Config, TrainingKnobs
from tests.assets.harness import Graph

CHECKPOINT_EVERY = 10
STAGE2_STEPS = 38
"""One epoch of the smoke transfer set (the 602 rows the refined teacher keeps, batch 16): long enough to be
killed in the middle of the epoch, short enough for the suite."""


def stage2_config() -> Stage2Config:
    """The smoke preset's stage 2, checkpointing every few steps."""
    return Stage2Config(
        training=TrainingKnobs(
            epochs=1.0,
            learning_rate=5e-4,
            batch_size=16,
            max_length=32,
            checkpoint_every=CHECKPOINT_EVERY,
            min_steps_per_label=0,  # the epochs alone fix the step count the tests count on
        )
    )


def materialize_stage2(graph: Graph, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("student_stage2"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={"student_stage2": stage2_config()}),
        raise_on_error=raise_on_error,
    )


def main(root: Path) -> None:
    torch.set_num_threads(1)
    materialize_stage2(Graph(root, instance=dg.DagsterInstance.get()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
