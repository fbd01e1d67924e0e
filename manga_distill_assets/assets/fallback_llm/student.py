"""The student LM: supervised fine-tuning on the teacher's answers."""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from manga_distill_assets.assets.automation import on_input_content_change
from manga_distill_assets.assets.fallback_llm.config import LlmStudentConfig
from manga_distill_assets.assets.intent_classifier.common import (
    GPU_OP_TAGS,
    GPU_POOL,
    log_progress,
    loss_curve,
    ref_output,
)
from manga_distill_assets.data.fingerprint import frame_fingerprint
from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.distill.chat_model import load_base, tiny_llama, train_tokenizer
from manga_distill_assets.distill.sft import conversation, train_sft
from manga_distill_assets.distill.students import count_parameters
from manga_distill_assets.resources.assistant_teacher import AssistantTeacher
from manga_distill_assets.resources.model_store import ModelRef, ModelStore
from manga_distill_assets.resources.workspace import TrainingWorkspace


def _put(store: ModelStore, model, tokenizer, kind: str, metrics: dict) -> ModelRef:
    with tempfile.TemporaryDirectory() as tmp:
        return store.put(
            save_model(model, tokenizer, Path(tmp) / kind), kind=kind, label_map={}, metrics=metrics
        )


@dg.asset(
    group_name="fallback_llm",
    code_version="2",
    kinds={"pytorch"},
    automation_condition=on_input_content_change(),
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def llm_student(
    context: dg.AssetExecutionContext,
    config: LlmStudentConfig,
    teacher_responses: pd.DataFrame,
    assistant_teacher: AssistantTeacher,
    model_store: ModelStore,
    training_workspace: TrainingWorkspace,
) -> dg.Output[dict]:
    """SFT with TRL on (system, question, teacher answer) chats, loss on the assistant turn only.

    The offline base is a small Llama built from a config over a BPE tokenizer trained on these chats; with
    `base_model` any causal LM (Llama 3 8B Instruct with QLoRA on a GPU). The untuned base is stored beside
    the student (or named, for a hub model) so llm_eval can show what tuning bought. A rerun after a crash
    resumes from the last checkpoint in the training workspace.
    """
    system = assistant_teacher.prompt().text
    if config.max_conversations and len(teacher_responses) > config.max_conversations:
        teacher_responses = teacher_responses.sample(config.max_conversations, random_state=config.seed)
    questions, answers = teacher_responses["question"].tolist(), teacher_responses["answer"].tolist()
    if config.base_model:
        model, tokenizer = load_base(config.base_model, bf16=config.bf16, load_in_4bit=config.load_in_4bit)
        base = {"hub_id": config.base_model}
    else:
        tokenizer = train_tokenizer([system, *questions, *answers], config.vocab_size)
        model = tiny_llama(tokenizer, config.shape(), config.seed)
        base = _put(model_store, model, tokenizer, "llm_student_base", {}).to_dict()
    chats = [
        conversation(system, question, answer) for question, answer in zip(questions, answers, strict=True)
    ]
    with training_workspace.checkpoints(
        "llm_student",
        frame_fingerprint(teacher_responses, ["question", "answer"]),
        system,
        config.model_dump_json(),
    ) as checkpoints:
        result = train_sft(
            model, tokenizer, chats, checkpoints, config.sft_knobs(), progress=log_progress(context, "sft")
        )
        ref = _put(model_store, result.model, tokenizer, "llm_student", {"final_loss": result.final_loss})
    if result.truncated_away:
        context.log.warning(
            f"llm_student: {result.truncated_away} chats were longer than max_length={config.max_length} "
            "tokens up to their answer and were left out; raise max_length to train on them."
        )
    output = ref_output(
        ref,
        {
            "conversations": len(questions),
            "truncated_away": result.truncated_away,
            "parameters": count_parameters(result.model),
            "optimizer_steps": result.optimizer_steps,
            "train_seconds": round(result.train_seconds, 1),
            "final_loss": result.final_loss,
            "resumed_from": str(result.resumed_from) if result.resumed_from else None,
            "base_model": config.base_model or "llama built from config",
            "lora_rank": config.lora.rank,
            "loss_curve": loss_curve(result.log_history),
        },
    )
    return dg.Output(
        {**output.value, "base": base}, data_version=output.data_version, metadata=output.metadata
    )
