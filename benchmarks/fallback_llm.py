"""The fallback LLM: how much of the teacher's fact accuracy the offline student keeps, by size and training
time, and how the Bedrock → student fallback splits traffic under throttling.

``curve`` trains the offline student (a Llama built from a config, SFT with TRL on the offline teacher's
answers to the packaged train questions) at each ``--shapes`` entry (hidden:layers:epochs) and scores it on
the held-out test questions: fact accuracy (overall and by kind of question), its retention of the teacher's,
train seconds, and fact accuracy on as many questions it was trained on (memorised against generalised).

``group`` materialises the `fallback_llm` group with the defaults a user gets (after the intent teacher that
routes the query log, which is not part of the group), one asset per run so each one's wall time is on record,
and prints `llm_eval`'s rows.

``fallback`` answers ``--questions`` questions through ``FallbackAssistant`` with the real boto3 client
against the tests' loopback Bedrock server, with ``--throttled`` of the requests throttled, and reports the
split between Claude and the student and p50/p99 latency; the student is a tiny untrained Llama unless
``--student`` names an ``llm_student`` folder.

    .venv/bin/python benchmarks/fallback_llm.py curve --shapes 64:1:3 128:2:6 --test-questions 80
    .venv/bin/python benchmarks/fallback_llm.py fallback --questions 200 --throttled 0.3
    .venv/bin/python benchmarks/fallback_llm.py group

Prints a table and writes benchmarks/results/fallback_llm_<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from manga_distill_assets.assets.queries.clock import partition_clock
from manga_distill_assets.data.assistant_prompt import system_prompt
from manga_distill_assets.data.catalogue_assistant import catalogue_answer, is_refusal
from manga_distill_assets.data.manga_qa import generate_manga_qa
from manga_distill_assets.data.query_log import days_before
from manga_distill_assets.distill.answer_quality import answer_quality, fact_accurate
from manga_distill_assets.distill.chat_model import LlamaShape, tiny_llama, train_tokenizer
from manga_distill_assets.distill.generation import generate_answers
from manga_distill_assets.distill.sft import SFTKnobs, conversation, train_sft
from manga_distill_assets.serving.fallback import BedrockClaude, FallbackAssistant, Source, StudentModel
from tests.bedrock_server import LOCAL_HOSTS, Fault, start_bedrock_server

RESULTS = Path(__file__).parent / "results"


def curve(shapes: list[str], test_questions: int, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    system = system_prompt().text
    qa = generate_manga_qa()
    train, test = (
        qa[qa["split"] == "train"],
        qa[qa["split"] == "test"].sample(test_questions, random_state=13),
    )
    # Questions the student was trained on: how much it memorised, against how much it generalises.
    seen = train.sample(test_questions, random_state=13)
    pairs = [(q, a) for q, a in ((q, catalogue_answer(q)) for q in train["question"]) if not is_refusal(a)]
    teacher = answer_quality(
        [catalogue_answer(q) for q in test["question"]], test["answer"].tolist(), test["facts"].tolist()
    )
    rows = []
    for spec in shapes:
        hidden, layers, epochs = spec.split(":")
        tokenizer = train_tokenizer([system, *(text for pair in pairs for text in pair)], 1024)
        shape = LlamaShape(
            hidden_size=int(hidden),
            layers=int(layers),
            heads=4,
            kv_heads=2,
            intermediate_size=3 * int(hidden),
        )
        model = tiny_llama(tokenizer, shape, seed=42)
        with tempfile.TemporaryDirectory() as folder:
            result = train_sft(
                model,
                tokenizer,
                [conversation(system, q, a) for q, a in pairs],
                Path(folder),
                SFTKnobs(epochs=float(epochs), batch_size=16, learning_rate=5e-3, checkpoint_every=0),
                progress=lambda event: None,
            )
        answers = generate_answers(
            result.model, tokenizer, system, test["question"].tolist(), max_new_tokens=48
        )
        quality = answer_quality(answers, test["answer"].tolist(), test["facts"].tolist())
        stated = [fact_accurate(answer, facts) for answer, facts in zip(answers, test["facts"], strict=True)]
        seen_answers = generate_answers(
            result.model, tokenizer, system, seen["question"].tolist(), max_new_tokens=48
        )
        rows.append(
            {
                "shape": spec,
                "parameters": sum(p.numel() for p in result.model.parameters()),
                "train_seconds": round(result.train_seconds, 1),
                "steps": result.optimizer_steps,
                **{key: round(value, 4) for key, value in quality.items()},
                "teacher_fact_accuracy": teacher["fact_accuracy"],
                "retention": round(quality["fact_accuracy"] / teacher["fact_accuracy"], 4),
                "fact_accuracy_by_kind": {
                    kind: round(
                        float(np.mean([ok for ok, k in zip(stated, test["kind"], strict=True) if k == kind])),
                        3,
                    )
                    for kind in sorted(set(test["kind"]))
                },
                "train_questions_fact_accuracy": answer_quality(
                    seen_answers, seen["answer"].tolist(), seen["facts"].tolist()
                )["fact_accuracy"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fallback(
    questions: int, throttled: float, deadline_s: float, reserve_s: float, student_folder: str
) -> dict:
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, [LOCAL_HOSTS, os.environ.get(name)]))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark-key")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark-secret")
    system = system_prompt().text
    asked = [f"Is volume {number} of Berserk in stock?" for number in range(questions)]
    if student_folder:
        student = StudentModel(Path(student_folder), system)
    else:
        tokenizer = train_tokenizer([system, *asked], 300)
        model = tiny_llama(
            tokenizer, LlamaShape(hidden_size=64, layers=1, heads=4, kv_heads=2, intermediate_size=192), 0
        )

        def student(question: str, time_left_s: float) -> str:
            return generate_answers(
                model, tokenizer, system, [question], max_new_tokens=24, max_time_s=time_left_s
            )[0]

    server = start_bedrock_server()
    try:
        rng = random.Random(0)
        server.inject(*(Fault("throttle", text=q) for q in rng.sample(asked, round(throttled * questions))))
        claude = BedrockClaude(system, endpoint_url=server.endpoint, timeout_s=deadline_s - reserve_s)
        assistant = FallbackAssistant(claude, student, deadline_s=deadline_s, student_reserve_s=reserve_s)
        answers = [assistant.answer(question) for question in asked]
        assistant.close()
    finally:
        server.stop()
    latencies = {source: [a.latency_ms for a in answers if a.source is source] for source in Source}
    every = [a.latency_ms for a in answers]
    return {
        "questions": questions,
        "throttled_share": throttled,
        "deadline_ms": deadline_s * 1000,
        "by_claude": len(latencies[Source.CLAUDE]),
        "by_student": len(latencies[Source.STUDENT]),
        "p50_ms": round(float(np.percentile(every, 50)), 1),
        "p99_ms": round(float(np.percentile(every, 99)), 1),
        "student_p99_ms": round(float(np.percentile(latencies[Source.STUDENT] or [0], 99)), 1),
        "over_deadline": sum(ms > deadline_s * 1000 for ms in every),
    }


GROUP = ("manga_qa", "llm_prompts", "teacher_responses", "llm_student", "llm_eval")
LOG_DAYS = 3


def group(root: Path, now: datetime) -> dict:
    import dagster as dg

    from manga_distill_assets.definitions import defs, local_resources

    resources = local_resources(root / "artifacts")
    instance = dg.DagsterInstance.ephemeral()
    seconds: dict[str, float] = {}

    def materialize(key: str, partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        started = time.perf_counter()
        result = dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.assets(key),
            partition_key=partition_key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started
        if not result.get_asset_materialization_events():
            raise SystemExit(f"materialising {key} failed; see the run log above.")
        return result

    days = days_before(now, LOG_DAYS)
    materialize("labeled_intents")
    for day in days:
        materialize("raw_queries", partition_key=day)
    materialize("unlabeled_queries", partition_key=days[-1])
    materialize("teacher_model")
    for key in GROUP:
        last = materialize(key)
    report = last.output_for_node("llm_eval")
    rows = {
        name: {key: report[name][key] for key in ("fact_accuracy", "token_f1", "judge_score", "refusal_rate")}
        | {key: report[name][key] for key in ("p50_ms", "p99_ms") if key in report[name]}
        for name in ("teacher", "student", "base")
    }
    return {
        "group_seconds": sum(seconds[key] for key in GROUP),
        "seconds_per_asset": seconds,
        "test_questions": report["test_questions"],
        "fact_retention": report["fact_retention"],
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    curve_args = modes.add_parser("curve")
    curve_args.add_argument("--shapes", nargs="+", default=["64:1:3", "128:2:6"])
    curve_args.add_argument("--test-questions", type=int, default=80)
    curve_args.add_argument("--threads", type=int, default=2)
    fallback_args = modes.add_parser("fallback")
    fallback_args.add_argument("--questions", type=int, default=200)
    fallback_args.add_argument("--throttled", type=float, default=0.3)
    fallback_args.add_argument("--deadline-ms", type=float, default=1500)
    fallback_args.add_argument("--reserve-ms", type=float, default=500)
    fallback_args.add_argument("--student", default="")
    modes.add_parser("group")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.mode == "curve":
        result: object = curve(args.shapes, args.test_questions, args.threads)
    elif args.mode == "group":
        with tempfile.TemporaryDirectory(prefix="fallback-llm-") as scratch, partition_clock() as now:
            result = group(Path(scratch), now)
        print(json.dumps(result, indent=2))
    else:
        result = fallback(
            args.questions, args.throttled, args.deadline_ms / 1000, args.reserve_ms / 1000, args.student
        )
        print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"fallback_llm_{args.mode}.json").write_text(json.dumps(result, indent=2))
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
