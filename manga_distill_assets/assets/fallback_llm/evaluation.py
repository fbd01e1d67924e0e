"""Teacher, student and the student's untuned base on the held-out questions: quality, speed and cost."""

import json
import time
from hashlib import sha256

import dagster as dg
import numpy as np
import pandas as pd
import torch

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.fallback_llm.config import LlmEvalConfig
from manga_distill_assets.assets.markdown import markdown_table
from manga_distill_assets.distill.answer_quality import RUBRIC, answer_quality
from manga_distill_assets.distill.chat_model import load_base, load_causal_lm
from manga_distill_assets.distill.generation import generate_answers, generation_latency
from manga_distill_assets.distill.latency import torch_threads
from manga_distill_assets.distill.students import count_parameters
from manga_distill_assets.resources.assistant_teacher import AssistantTeacher
from manga_distill_assets.resources.model_store import ModelStore

ROWS = ("teacher", "student", "base")
TABLE_COLUMNS = (
    "fact_accuracy",
    "token_f1",
    "judge_score",
    "refusal_rate",
    "p50_ms",
    "p99_ms",
    "tokens_per_s",
    "usd_per_1k_queries",
    "parameters",
)


@dg.asset(
    group_name="fallback_llm",
    code_version="1",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    check_specs=[
        dg.AssetCheckSpec("student_beats_base", asset="llm_eval", blocking=True),
        dg.AssetCheckSpec("fact_retention", asset="llm_eval"),
    ],
)
def llm_eval(
    context: dg.AssetExecutionContext,
    config: LlmEvalConfig,
    llm_student: dict,
    manga_qa: pd.DataFrame,
    assistant_teacher: AssistantTeacher,
    model_store: ModelStore,
):
    """Fact accuracy, token F1, the offline rubric judge's 1–5 score and refusal rate on the test split;
    p50/p99 at a fixed number of new tokens and tokens/s on this machine; cost per 1,000 queries (Bedrock's
    token prices for the teacher, the serving machine's hourly price over measured time for the student)."""
    test = manga_qa[manga_qa["split"] == "test"].reset_index(drop=True)
    if config.max_questions and len(test) > config.max_questions:
        test = test.sample(config.max_questions, random_state=config.seed).reset_index(drop=True)
    if test.empty:
        raise dg.Failure(
            description="llm_eval: manga_qa has no test questions. Give the QA file a test split."
        )
    questions, references, facts = (
        test["question"].tolist(),
        test["answer"].tolist(),
        [list(facts) for facts in test["facts"]],
    )
    system = assistant_teacher.prompt().text
    student, tokenizer = load_causal_lm(model_store.get(llm_student))
    base_ref = llm_student["base"]
    base, base_tokenizer = (
        load_base(base_ref["hub_id"]) if "hub_id" in base_ref else load_causal_lm(model_store.get(base_ref))
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    student, base = student.to(device), base.to(device)
    report: dict = {"rubric": RUBRIC, "test_questions": len(test), "threads": config.threads}

    started = time.perf_counter()
    run = assistant_teacher.answer_all(questions, context.log)
    teacher_answers = [run.answers.get(question, "") for question in questions]
    report["teacher"] = {
        **answer_quality(teacher_answers, references, facts),
        "backend": assistant_teacher.backend,
        "seconds_for_all": time.perf_counter() - started,
        "usd_per_1k_queries": _teacher_usd(tokenizer, system, questions, teacher_answers, config),
    }
    with torch_threads(config.threads):
        for name, model, model_tokenizer in (("student", student, tokenizer), ("base", base, base_tokenizer)):
            context.log.info(f"llm_eval: generating {len(questions)} answers with the {name}")
            answers = generate_answers(
                model, model_tokenizer, system, questions, max_new_tokens=config.max_new_tokens
            )
            latency = generation_latency(
                model,
                model_tokenizer,
                system,
                questions,
                new_tokens=config.latency_new_tokens,
                runs=config.latency_runs,
            )
            mean_tokens = float(
                np.mean([len(model_tokenizer(answer)["input_ids"]) + 1 for answer in answers])
            )
            seconds_per_query = mean_tokens / latency["tokens_per_s"]
            report[name] = {
                **answer_quality(answers, references, facts),
                **latency,
                "parameters": count_parameters(model),
                "usd_per_1k_queries": 1000 * seconds_per_query * config.student_usd_per_hour / 3600,
                "examples": [
                    {"question": q, "answer": a} for q, a in list(zip(questions, answers, strict=True))[:5]
                ],
            }
    report["fact_retention"] = report["student"]["fact_accuracy"] / max(
        report["teacher"]["fact_accuracy"], 1e-12
    )
    report["cost_ratio"] = report["student"]["usd_per_1k_queries"] / max(
        report["teacher"]["usd_per_1k_queries"], 1e-12
    )
    table = [{"model": name, **{key: report[name].get(key, "") for key in TABLE_COLUMNS}} for name in ROWS]
    yield dg.Output(
        report,
        data_version=dg.DataVersion(_quality_version(report)),
        metadata={
            "summary": dg.MetadataValue.md(markdown_table(table)),
            "report": dg.MetadataValue.json(json.loads(json.dumps(report, default=float))),
            "fact_retention": report["fact_retention"],
            **{f"{name}_fact_accuracy": report[name]["fact_accuracy"] for name in ROWS},
            **{f"{name}_judge_score": report[name]["judge_score"] for name in ROWS},
            "student_p50_ms": report["student"]["p50_ms"],
            "student_usd_per_1k_queries": report["student"]["usd_per_1k_queries"],
            "teacher_usd_per_1k_queries": report["teacher"]["usd_per_1k_queries"],
        },
    )
    student_row, base_row = report["student"], report["base"]
    yield dg.AssetCheckResult(
        check_name="student_beats_base",
        passed=student_row["token_f1"] > base_row["token_f1"]
        and student_row["fact_accuracy"] >= base_row["fact_accuracy"],
        metadata={
            key: f"{student_row[key]:.3f} vs {base_row[key]:.3f}" for key in ("fact_accuracy", "token_f1")
        },
    )
    yield dg.AssetCheckResult(
        check_name="fact_retention",
        passed=report["fact_retention"] >= 0.88,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"fact_retention": report["fact_retention"], "target": 0.88},
    )


def _teacher_usd(
    tokenizer, system: str, questions: list[str], answers: list[str], config: LlmEvalConfig
) -> float:
    """Bedrock's price of the teacher's calls, with tokens counted by the student's tokenizer (Claude's own
    tokenizer is not available offline; the count is an estimate)."""
    prompt_tokens = [len(tokenizer(f"{system} {question}")["input_ids"]) for question in questions]
    answer_tokens = [len(tokenizer(answer)["input_ids"]) for answer in answers]
    usd = (
        sum(prompt_tokens) * config.teacher_input_usd_per_mtok
        + sum(answer_tokens) * config.teacher_output_usd_per_mtok
    ) / 1e6
    return 1000 * usd / len(questions)


def _quality_version(report: dict) -> str:
    """A hash of the quality figures without timings, so a re-run with the same models keeps its version."""
    quality = {
        name: {key: round(report[name][key], 6) for key in ("fact_accuracy", "token_f1", "judge_score")}
        for name in ROWS
    }
    return sha256(json.dumps(quality, sort_keys=True).encode()).hexdigest()
