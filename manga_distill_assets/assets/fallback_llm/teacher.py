"""The teacher's answers to the prompts: what the student is fine-tuned on."""

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.resources.assistant_teacher import AssistantTeacher

RESPONSE_COLUMNS = ["question", "answer", "origin"]


@dg.asset(
    group_name="fallback_llm",
    code_version="1",
    kinds={"pandas", "parquet"},
    automation_condition=on_input_content_change(),
)
def teacher_responses(
    context: dg.AssetExecutionContext, llm_prompts: pd.DataFrame, assistant_teacher: AssistantTeacher
) -> dg.Output[pd.DataFrame]:
    """The teacher's answer to every prompt (Claude on Bedrock, or the offline catalogue teacher), asked once
    per model and system-prompt version; refusals, empty and over-long answers dropped and counted."""
    run = assistant_teacher.answer_all(llm_prompts["question"].tolist(), context.log)
    origin = dict(zip(llm_prompts["question"], llm_prompts["origin"], strict=True))
    frame = pd.DataFrame(
        [(question, answer, origin[question]) for question, answer in run.answers.items()],
        columns=RESPONSE_COLUMNS,
    )
    if frame.empty:
        raise dg.Failure(
            description=f"teacher_responses: the teacher kept no answer to {len(llm_prompts)} prompts "
            f"(dropped: {dict(run.dropped)}, failed: {run.failed}, over budget: {run.over_budget}). "
            "Check the teacher's log lines and budget.",
        )
    context.log.info(
        f"teacher_responses: {len(frame)} kept, {run.sent} sent, {run.cached} cached, "
        f"${run.spent_usd:.4f} spent"
    )
    prompt = assistant_teacher.prompt()
    return dg.Output(
        frame,
        data_version=dg.DataVersion(frame_fingerprint(frame, ["question", "answer"], ordered=False)),
        metadata={
            "backend": assistant_teacher.backend,
            "model_id": assistant_teacher.model_id,
            "prompt_version": prompt.version,
            "kept": len(frame),
            "sent": run.sent,
            "cached": run.cached,
            "failed": run.failed,
            "over_budget": run.over_budget,
            **{
                f"dropped_{reason}": run.dropped.get(reason, 0)
                for reason in ("refusal", "empty", "over_long")
            },
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "spent_usd": round(run.spent_usd, 6),
            "worst_case_usd": round(run.worst_case_usd, 6),
        },
    )
