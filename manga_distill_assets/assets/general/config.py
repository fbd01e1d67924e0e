"""Knobs of the general stage: the narrow student's shape, the passages, and its training budget."""

import dagster as dg
from pydantic import Field

from manga_distill_assets.assets.intent_classifier.config import EncoderShape, TrainingKnobs


class GeneralStudentConfig(dg.Config):
    """TinyBERT-4's shape (4 layers × 312, 12 heads, 1,200 feed-forward) distilled from the teacher's base.

    On 2 CPU cores the default corpus (WikiText-2 validation, 5,801 passages) takes about 96 s an epoch, so
    8 epochs (13 minutes) fit the stage's 20-minute budget (docs/general-distillation.md has the curve).
    """

    base_model: str = Field(
        default="",
        description="The pre-trained encoder to imitate (hub id or folder); empty: the packaged "
        "all-MiniLM-L6-v2. Use the teacher's base_model: the task stage needs the same tokenizer.",
    )
    shape: EncoderShape = EncoderShape(num_layers=4, hidden_size=312, num_heads=12, intermediate_size=1200)
    max_words: int = Field(default=48, gt=0, description="Words per passage; passages keep whole sentences.")
    max_passages: int = Field(default=0, ge=0, description="Use only the first N passages (0: all).")
    training: TrainingKnobs = TrainingKnobs(
        epochs=8.0, learning_rate=1e-3, batch_size=32, max_length=128, checkpoint_every=500
    )
