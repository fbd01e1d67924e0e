"""Trainer callbacks: progress events to a sink (e.g. a Dagster run log) and step checkpoints."""

from __future__ import annotations

from collections.abc import Callable

from transformers import TrainerCallback

Progress = Callable[[dict[str, float]], None]
"""Receives every log event as a flat dict: `step`, `epoch`, and then either the training keys (`loss`, one
key per loss term such as `hard`/`soft` or `embeddings`/`hidden`/`attention`, `lr`, `grad_norm`,
`samples_per_second`), the validation keys (`eval_loss`, `eval_accuracy`, ...) or the end-of-run summary
(`train_runtime`, `train_samples_per_second`, `train_loss`, ...)."""


class ProgressReporter(TrainerCallback):
    """Forwards every log event, from the main process only, to a `Progress` sink (e.g. a Dagster run log)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.progress({"step": state.global_step, **logs})


class CheckpointEverySteps(TrainerCallback):
    """Step checkpoints for loops whose save strategy must follow evaluation (best-model tracking)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0:
            control.should_save = True
