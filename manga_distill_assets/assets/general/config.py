"""Knobs of the general stage: the narrow student's shape, the passages, and its training budget."""

import dagster as dg
from pydantic import Field

from manga_distill_assets.assets.intent_classifier.config import EncoderShape, TrainingKnobs


class GeneralStudentConfig(dg.Config):
    """A narrow student (4 layers × 192, 6 heads, 768 feed-forward) distilled from the teacher's base.

    The shape is what measured fast enough on a CPU: untrained, at batch 1 on one thread, TinyBERT-4's
    4 × 312 ran only 2.0× faster than the 6 × 384 teacher in PyTorch (the default 2 × 384 student 3.2×),
    4 × 192 5.2× (`benchmarks/student_shapes.py`, docs/general-distillation.md). On 2 CPU cores the default
    corpus (WikiText-2 validation, 5,801 passages) makes 8 epochs in about 13 minutes at 4 × 312, inside the
    stage's 20-minute budget, and less at this width.
    """

    base_model: str = Field(
        default="",
        description="The pre-trained encoder to imitate (hub id or folder); empty: the packaged "
        "all-MiniLM-L6-v2. Use the teacher's base_model: the task stage needs the same tokenizer.",
    )
    shape: EncoderShape = EncoderShape()
    max_words: int = Field(default=48, gt=0, description="Words per passage; passages keep whole sentences.")
    max_passages: int = Field(default=0, ge=0, description="Use only the first N passages (0: all).")
    training: TrainingKnobs = TrainingKnobs(
        epochs=8.0, learning_rate=1e-3, batch_size=32, max_length=128, checkpoint_every=500
    )
