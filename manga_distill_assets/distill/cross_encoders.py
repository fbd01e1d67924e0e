"""Cross-encoder rerankers: fine-tuning the teacher, distilling the student, scoring (query, passage) pairs.

Training runs on sentence-transformers' `CrossEncoderTrainer`: the teacher on graded pairs with
`BinaryCrossEntropyLoss` (the grade scaled to 0-1 as a soft target, as its ms-marco recipes do), the student
on each query's candidate list with `RankingDistillationLoss`, which calls `ranking_distillation_loss`.
(sentence-transformers' own `MarginMSELoss` computes the same Margin-MSE, and the tests check that; ours also
adds the listwise term, which needs the whole list's scores from one forward.)

Models travel as plain Hugging Face sequence-classification folders with one output (`save_model`), so the
ONNX export, the model store and any `AutoModelForSequenceClassification` user read them unchanged.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers.cross_encoder import (
    CrossEncoder,
    CrossEncoderTrainer,
    CrossEncoderTrainingArguments,
)
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from sentence_transformers.util import batch_to_device
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.ranking_losses import ranking_distillation_loss
from manga_distill_assets.distill.training import Stage1Result, TrainingConfig, train_stage1
from manga_distill_assets.distill.training.callbacks import Progress, ProgressReporter
from manga_distill_assets.distill.training.config import Precision, precision_arguments

RELEVANCE_LABEL = {0: "relevance"}
PAIR_MAX_LENGTH = 48
"""Tokens per (query, passage) pair a reranker is trained on by default: a product passage and a search query
fit. `CrossEncoder` records the training length as its tokenizer's `model_max_length`, which is saved with the
model, and every later scoring reads the length from there (`pair_length`): a model is scored on pairs cut as
it was trained on them, whatever `max_length` its training was given."""
LONGEST_PAIR = 512
"""The cap where a tokenizer names no usable length of its own (BERT's position table)."""


@dataclass(frozen=True)
class RerankTraining:
    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_length: int = PAIR_MAX_LENGTH
    warmup_ratio: float = 0.1
    seed: int = 0
    log_every: int = 10
    min_steps: int = 0
    """At least this many optimiser steps, going round the data again as needed: a new scoring head on a few
    hundred pairs gets too few updates from `epochs` alone."""
    precision: Precision = "auto"
    """As for every training loop (`resolve_precision`): bf16 autocast where the hardware multiplies bf16
    natively, fp32 weights; the trained model scores in fp32."""

    def max_steps(self, rows: int) -> int:
        """The step cap for `rows` training rows: `epochs` worth, or `min_steps` where that is more;
        -1 (the epochs decide) otherwise, as `TrainingArguments` takes it."""
        return (
            self.min_steps
            if self.min_steps > math.ceil(self.epochs * math.ceil(rows / self.batch_size))
            else -1
        )


@dataclass
class TrainedReranker:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    steps: int
    history: list[dict] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        losses = [entry["loss"] for entry in self.history if "loss" in entry]
        return float(losses[-1]) if losses else float("nan")


class RankingDistillationLoss(nn.Module):
    """Margin-MSE (+ listwise KL) for rows of (query, candidate_0, ..., candidate_n) labelled with the
    teacher's scores of those candidates, candidate_0 being the teacher's best."""

    def __init__(self, model: CrossEncoder, listwise_weight: float = 0.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.listwise_weight = listwise_weight
        self.temperature = temperature

    def forward(
        self,
        inputs: list[list[str]],
        labels: Tensor | list[Tensor],
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        queries, columns = inputs[0], inputs[1:]
        pairs = [(query, doc) for column in columns for query, doc in zip(queries, column, strict=True)]
        features = batch_to_device(self.model.preprocess(pairs, prompt=prompt, task=task), self.model.device)
        scores = self.model(features)["scores"].view(len(columns), len(queries)).T
        teacher = torch.stack(labels) if isinstance(labels, list) else labels
        total, _ = ranking_distillation_loss(scores, teacher.float(), self.listwise_weight, self.temperature)
        return total


def train_teacher_reranker(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    docs: Sequence[str],
    grades: Sequence[int],
    settings: RerankTraining,
    output_dir: Path,
    max_grade: int = 3,
    progress: Progress | None = None,
) -> TrainedReranker:
    """Fine-tunes `model` (one output) pointwise on graded pairs: BCE against grade / max_grade, so the
    file's top grade is a target of 1 whatever its scale (0-3 judgements, or 0/1 clicks)."""
    data = Dataset.from_dict(
        {"query": list(queries), "doc": list(docs), "label": [g / max_grade for g in grades]}
    )
    return _train(model, tokenizer, data, BinaryCrossEntropyLoss, settings, output_dir, progress)


def match_teacher_layers(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    docs: Sequence[str],
    config: TrainingConfig,
    progress: Progress | None = None,
) -> Stage1Result:
    """TinyBERT's intermediate-layer distillation on (query, passage) pairs: the student's embeddings, hidden
    states and attention maps learn the reranker teacher's (uniform layer map), before it learns its scores.

    A student narrower than its teacher starts with nothing the teacher learnt about relevance: trained on
    score margins alone, the 4 x 192 general student reached test NDCG@3 0.46 against its teacher's 0.75
    (docs/reranker.md). Pairs are cut as `CrossEncoder` cuts them (`longest_first`); both models must share
    the tokenizer's vocabulary, so prune the student's only afterwards."""
    matches = uniform_layer_map(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    pairs = list(zip(queries, docs, strict=True))
    with _without_dropout(student):
        return train_stage1(student, teacher, tokenizer, pairs, matches, config, progress=progress)


@contextmanager
def _without_dropout(model: nn.Module) -> Iterator[None]:
    """`model` with every dropout at zero, restored afterwards.

    Layer matching compares the student's attention maps after attention dropout (what transformers returns)
    and its hidden states after hidden dropout with the teacher's clean ones, so dropout only adds noise to
    the targets; without it the 4 x 192 student kept more of the teacher (docs/reranker.md) and each step
    ran faster."""
    dropouts = [module for module in model.modules() if isinstance(module, nn.Dropout)]
    rates = [dropout.p for dropout in dropouts]
    for dropout in dropouts:
        dropout.p = 0.0
    try:
        yield
    finally:
        for dropout, rate in zip(dropouts, rates, strict=True):
            dropout.p = rate


def train_student_reranker(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    candidate_lists: Sequence[Sequence[str]],
    teacher_scores: Sequence[Sequence[float]],
    settings: RerankTraining,
    output_dir: Path,
    listwise_weight: float = 0.0,
    temperature: float = 1.0,
    progress: Progress | None = None,
) -> TrainedReranker:
    """Distils the teacher's scores of each query's candidates (equal-length lists, best first)."""
    sizes = {len(docs) for docs in candidate_lists} | {len(scores) for scores in teacher_scores}
    if len(sizes) != 1 or sizes.pop() < 2:
        raise ValueError("Every query needs the same number (≥ 2) of candidates and teacher scores.")
    columns: dict[str, list] = {"query": list(queries)}
    for i in range(len(candidate_lists[0])):
        columns[f"doc_{i}"] = [docs[i] for docs in candidate_lists]
    columns["label"] = [list(map(float, scores)) for scores in teacher_scores]

    def loss(cross_encoder: CrossEncoder) -> nn.Module:
        return RankingDistillationLoss(cross_encoder, listwise_weight, temperature)

    return _train(model, tokenizer, Dataset.from_dict(columns), loss, settings, output_dir, progress)


def _train(model, tokenizer, data: Dataset, loss, settings: RerankTraining, output_dir: Path, progress):
    with tempfile.TemporaryDirectory() as tmp:
        cross_encoder = CrossEncoder(
            str(save_model(model, tokenizer, Path(tmp) / "start")), max_length=settings.max_length
        )
    history: list[dict] = []
    arguments = CrossEncoderTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps(len(data)),
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a share of the steps in transformers 5
        seed=settings.seed,
        data_seed=settings.seed,
        **precision_arguments(settings.precision),
        logging_steps=settings.log_every,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = CrossEncoderTrainer(
        model=cross_encoder,
        args=arguments,
        train_dataset=data,
        loss=loss(cross_encoder),
        callbacks=[ProgressReporter(lambda event: (history.append(event), progress and progress(event)))],
    )
    output = trainer.train()
    # Mixed precision leaves the forward wrapped in autocast for good; the model handed back scores in fp32.
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    reset_truncation(cross_encoder.tokenizer)
    return TrainedReranker(cross_encoder.model.eval(), cross_encoder.tokenizer, output.global_step, history)


def pair_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    docs: Sequence[str],
    batch_size: int = 64,
) -> np.ndarray:
    """The model's raw score (logit) for each (query, doc) pair, batched in order of length for speed; pairs
    are cut at the model's own length (`pair_length`)."""
    if len(queries) != len(docs):
        raise ValueError(f"Got {len(queries)} queries for {len(docs)} docs; pass one query per doc.")
    order = np.argsort([len(q) + len(d) for q, d in zip(queries, docs, strict=True)], kind="stable")
    scores = np.empty(len(order), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = encode_pairs(tokenizer, [queries[i] for i in chunk], [docs[i] for i in chunk])
            encoded = encoded.to(next(model.parameters()).device)
            scores[chunk] = model(**encoded).logits[:, 0].float().cpu().numpy()
    return scores


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    docs: Sequence[str],
    max_length: int | None = None,
    tensors: str = "pt",
):
    """Query and passage as one sequence pair, cut as `CrossEncoder` cuts them in training: a token at a time
    from the longer of the two, so a short query stays whole and an over-long one (a pasted paragraph in the
    query log) is cut too rather than failing the batch. `max_length` defaults to the model's
    `pair_length`."""
    encoded = tokenizer(
        list(queries),
        list(docs),
        padding=True,
        truncation="longest_first",
        max_length=max_length or pair_length(tokenizer),
        return_tensors=tensors,
    )
    reset_truncation(tokenizer)
    return encoded


def pair_length(tokenizer: PreTrainedTokenizerBase) -> int:
    """The pair length a reranker was trained on: its tokenizer's `model_max_length` (which training sets),
    or `LONGEST_PAIR` where the tokenizer names none (transformers then holds a huge placeholder)."""
    return min(tokenizer.model_max_length, LONGEST_PAIR)


def reset_truncation(tokenizer: PreTrainedTokenizerBase) -> None:
    """A fast tokenizer keeps the last call's truncation in its state, and saves it: a pair's truncation would
    make every later single-text call (vocabulary pruning, a user's own code) fail, so it is cleared."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
