"""The training loops: teacher fine-tuning, the no-distillation baseline, stage 1 (intermediate layers) and
stage 2 (outputs from cached teacher logits).

Every loop is a Hugging Face `Trainer` with only the loss replaced. The Trainer already provides what a
hand-written loop would have to get right and keep right: gradient accumulation, bf16/fp16 autocast on a GPU
and plain fp32 on a CPU, DDP under `torchrun` or `accelerate launch` with no change to this code, a checkpoint
every N steps with `resume_from_checkpoint` that restores optimiser, scheduler and RNG state, seeding, and
callbacks. We add the loss terms, their logging, and a data order that survives a resume.

Every loop takes a `TrainingConfig`, reports each log event to an optional `Progress` callable (step, epoch,
lr, samples/s and every loss term, not only the total), resumes from the latest `checkpoint-*` in
`config.output_dir` when there is one, and returns a `TrainingResult` holding the model trained in place.
Supervised loops (teacher, baselines, stage 2 with a validation set) stop early and keep their best model.

The shared parts are split as TRL splits them: `config` (TrainingConfig and its TrainingArguments),
`schedule` (step cap, validation interval and warm-up from the data), `data` (rows, label checks, sampler),
`callbacks` (progress, step checkpoints) and `trainer` (the loss-term Trainer, `fit`, the result).
"""

from manga_distill_assets.distill.training.callbacks import Progress
from manga_distill_assets.distill.training.combined import train_combined
from manga_distill_assets.distill.training.config import Precision, TrainingConfig
from manga_distill_assets.distill.training.data import LabeledTexts
from manga_distill_assets.distill.training.stage1 import Stage1Result, train_stage1
from manga_distill_assets.distill.training.stage2 import train_stage2
from manga_distill_assets.distill.training.teacher import train_baseline, train_teacher
from manga_distill_assets.distill.training.trainer import TrainingResult

__all__ = [
    "LabeledTexts",
    "Precision",
    "Progress",
    "Stage1Result",
    "TrainingConfig",
    "TrainingResult",
    "train_baseline",
    "train_combined",
    "train_stage1",
    "train_stage2",
    "train_teacher",
]
