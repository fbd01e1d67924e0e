"""int8 agreement on many classes: the ONNX int8 graph against the PyTorch model it came from, on BANKING77's
3,080 test texts (77 intents), with the pooler and classifier and the feed-forward down-projections kept fp32
(the default) or quantised, with per-channel or per-tensor weights, and exported at activation smoothing
strengths 0.5 to 0.9 (SmoothQuant, `distill/smoothing.py`; scales set on 1,000 train texts, one at a time);
with each graph's p50 latency for one text at one thread.

By default the model is `baseline_student`'s start (layers 2 and 5 of the packaged all-MiniLM-L6-v2) with its
77-class classifier fitted by logistic regression on the pooled output of 30 train texts per intent: no
encoder training, so the script runs in minutes on a CPU, yet the head has 77 real classes with close
runner-ups. `--student` takes a trained student folder instead, such as the one benchmarks/intent_real_data.py
leaves under its workdir (`<run>/artifacts/models/student_stage2/<hash>`).

    PYTHONPATH=. python benchmarks/int8_many_classes.py [--student FOLDER]

Prints a table and writes benchmarks/results/int8_many_classes.json. The data is ../shared/data/banking77
or $BANKING77_DIR; without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from onnxruntime import InferenceSession
from sklearn.linear_model import LogisticRegression
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from manga_distill_assets.assets.intent_classifier.teacher import default_teacher_base
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.onnx_export import (
    encode_for_session,
    export_onnx,
    onnx_logits,
    open_session,
    parity,
    quantize_int8,
)
from manga_distill_assets.distill.smoothing import input_ranges, smoothed
from manga_distill_assets.distill.students import from_pretrained, from_teacher

RESULTS = Path(__file__).parent / "results" / "int8_many_classes.json"
BANKING77 = Path(
    os.environ.get(
        "BANKING77_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"
    )
)
PER_INTENT = 30
VARIANTS: dict[str, tuple[float | None, dict[str, bool]]] = {
    "head and FFN output fp32, per-channel (default)": (None, {}),
    "FFN output int8": (None, {"quantize_ffn_output": True}),
    "head int8": (None, {"quantize_head": True}),
    "head and FFN output int8": (None, {"quantize_head": True, "quantize_ffn_output": True}),
    "per-tensor": (None, {"per_channel": False}),
    **{f"smoothed at {alpha}": (alpha, {}) for alpha in (0.5, 0.7, 0.9)},
}
"""Each graph: the smoothing strength it is exported at (None: none) and `quantize_int8`'s options."""
TIMED_TEXTS = 300
RANGE_TEXTS = 1000


def read(name: str) -> list[dict[str, str]]:
    with (BANKING77 / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def fitted_head_model(
    train: list[dict[str, str]], names: list[str]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """baseline_student's start with a logistic-regression classifier on 30 texts per intent."""
    random.Random(0).shuffle(train)
    by_intent: dict[str, list[str]] = {}
    for row in train:
        by_intent.setdefault(row["category"], []).append(row["text"])
    texts = [text for name in names for text in by_intent[name][:PER_INTENT]]
    labels = [index for index, name in enumerate(names) for _ in by_intent[name][:PER_INTENT]]
    base = default_teacher_base()
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    model = from_teacher(from_pretrained(base, dict(enumerate(names)), seed=0), [2, 5]).eval()
    with torch.no_grad():
        pooled = torch.cat(
            [
                model.bert(
                    **tokenizer(texts[start : start + 64], padding=True, return_tensors="pt")
                ).pooler_output
                for start in range(0, len(texts), 64)
            ]
        ).numpy()
        head = LogisticRegression(C=10.0, max_iter=1000).fit(pooled, labels)
        model.classifier.weight.copy_(torch.from_numpy(head.coef_).float())
        model.classifier.bias.copy_(torch.from_numpy(head.intercept_).float())
    return model, tokenizer


def p50_ms(session: InferenceSession, tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> float:
    times = []
    for text in texts:
        inputs = encode_for_session(session, tokenizer, [text])
        started = time.perf_counter()
        session.run(None, inputs)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, help="a trained student folder (safetensors and tokenizer)")
    args = parser.parse_args()
    if not (BANKING77 / "train.csv").is_file():
        print(f"skipped: BANKING77 is not at {BANKING77}.")
        return
    torch.set_num_threads(1)
    train, test = read("train.csv"), read("test.csv")
    names = sorted({row["category"] for row in train})
    if args.student:
        tokenizer = AutoTokenizer.from_pretrained(args.student)
        model = AutoModelForSequenceClassification.from_pretrained(args.student).eval()
        names = [model.config.id2label[index] for index in range(model.config.num_labels)]
    else:
        model, tokenizer = fitted_head_model(train, names)
    test_texts = [row["text"] for row in test]
    truth = np.array([names.index(row["category"]) for row in test])
    started = time.perf_counter()
    reference = predict_logits(model, tokenizer, test_texts)
    top_two = np.sort(reference, axis=1)[:, -2:]
    report = {
        "model": str(args.student or "baseline_student start, fitted head"),
        "classes": len(names),
        "test_texts": len(test_texts),
        "pytorch_test_accuracy": float((reference.argmax(axis=1) == truth).mean()),
        "median_top2_logit_margin": float(np.median(top_two[:, 1] - top_two[:, 0])),
        "variants": {},
    }
    range_texts = [row["text"] for row in train][:: max(1, len(train) // RANGE_TEXTS)]
    one_text_batches = (tokenizer(text, truncation=True, return_tensors="pt") for text in range_texts)
    ranges = input_ranges(model, one_text_batches)
    with tempfile.TemporaryDirectory() as scratch:
        for index, (label, (alpha, options)) in enumerate(VARIANTS.items()):
            exported = model if alpha is None else smoothed(model, ranges, alpha)
            fp32 = export_onnx(exported, tokenizer, Path(scratch) / f"model_{index}.onnx")
            path = quantize_int8(fp32, Path(scratch) / f"int8_{index}.onnx", **options)
            session = open_session(path)
            result = parity(reference, onnx_logits(session, tokenizer, test_texts))
            report["variants"][label] = {
                "p50_ms": p50_ms(session, tokenizer, test_texts[:TIMED_TEXTS]),
                "agreement": result.agreement,
                "changed": round((1 - result.agreement) * len(test_texts)),
                "max_abs_logit_diff": result.max_abs_diff,
                "size_MB": path.stat().st_size / 1e6,
            }
    report["seconds"] = time.perf_counter() - started
    print(
        f"\nBANKING77 test ({report['test_texts']} texts, {report['classes']} classes), PyTorch accuracy "
        f"{report['pytorch_test_accuracy']:.4f}, "
        f"median top-2 logit margin {report['median_top2_logit_margin']:.3f}\n"
    )
    print("| int8 graph | agreement | changed | max abs logit diff | p50 ms | size MB |")
    print("|---|---|---|---|---|---|")
    for label, row in report["variants"].items():
        print(
            f"| {label} | {row['agreement']:.4f} | {row['changed']} | {row['max_abs_logit_diff']:.3f} | "
            f"{row['p50_ms']:.2f} | {row['size_MB']:.2f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
