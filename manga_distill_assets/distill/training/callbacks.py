"""Trainer callbacks: progress events to a sink (e.g. a Dagster run log) and step checkpoints."""

from __future__ import annotations

from collections.abc import Callable

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

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


LOSS_IMPROVEMENT = 1e-3
"""Relative fall of the validation loss that counts as progress: less is rounding, not learning."""


class StopWhenValidationStalls(TrainerCallback, ExportableState):
    """Early stopping that counts a validation as progress when accuracy rises or the loss falls, and that
    lowers the learning rate before it gives up.

    Accuracy on a small validation split moves in steps of 1/n and can stand still for several validations
    while the model still improves. On BANKING77 with 10 labelled texts per intent (77 validation texts)
    stopping on accuracy alone ended the teacher after 132 of at most 1,540 steps, and the baseline that
    started from its layers and trained on went 4 points past it. The loss moves with every text.

    The schedule decays over the step cap, which early stopping rarely reaches, so a run stalls at nearly
    its full rate, where validation only fluctuates and the weights drift away from their best point. So the
    first stall multiplies the rate by `cut_factor` at once (up to `rate_cuts` times), annealing from near
    that point; once the cuts are spent, `patience` stalls in a row stop (Keras's ReduceLROnPlateau with a
    shorter patience than EarlyStopping's). On the packaged demo set, waiting `patience` stalls before the
    cut let the teacher drift for two more epochs after its best validation, and the cut that followed never
    recovered it.
    Which checkpoint is kept is decided by accuracy, then cross-entropy (`metrics.SELECTION_METRIC`).
    """

    def __init__(self, patience: int, rate_cuts: int = 1, cut_factor: float = 0.1) -> None:
        self.patience = patience
        self.rate_cuts = rate_cuts
        self.cut_factor = cut_factor
        self.best_accuracy: float | None = None
        self.best_loss: float | None = None
        self.stalled = 0
        self.cuts_made = 0

    def on_evaluate(self, args, state, control, metrics=None, lr_scheduler=None, **kwargs):
        metrics = metrics or {}
        accuracy, loss = metrics.get("eval_accuracy"), metrics.get("eval_loss")
        improved = False
        if accuracy is not None and (self.best_accuracy is None or accuracy > self.best_accuracy):
            self.best_accuracy, improved = accuracy, True
        if loss is not None and (self.best_loss is None or loss < self.best_loss * (1 - LOSS_IMPROVEMENT)):
            self.best_loss, improved = loss, True
        self.stalled = 0 if improved else self.stalled + 1
        if self.stalled and self.cuts_made < self.rate_cuts and lr_scheduler is not None:
            # LambdaLR schedules compute each step's rate from base_lrs and checkpoint them.
            lr_scheduler.base_lrs = [rate * self.cut_factor for rate in lr_scheduler.base_lrs]
            self.cuts_made += 1
            self.stalled = 0
            return
        if self.stalled >= self.patience:
            control.should_training_stop = True

    def state(self) -> dict:
        return {
            "args": {"patience": self.patience, "rate_cuts": self.rate_cuts, "cut_factor": self.cut_factor},
            "attributes": {
                "best_accuracy": self.best_accuracy,
                "best_loss": self.best_loss,
                "stalled": self.stalled,
                "cuts_made": self.cuts_made,
            },
        }
