"""teacher_responses on the offline teacher and on Claude (the shared client against the loopback server)."""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from manga_distill_assets.assets.fallback_llm.teacher import teacher_responses
from manga_distill_assets.bedrock.requests import ChatRequest
from manga_distill_assets.data.assistant_prompt import system_prompt
from manga_distill_assets.data.catalogue_assistant import REFUSAL
from manga_distill_assets.resources.assistant_teacher import BedrockAssistantTeacher, OfflineAssistantTeacher
from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.unusable import MisconfiguredResource
from manga_distill_assets.settings import bedrock_resources
from tests.bedrock_server import BedrockServer, Fault, paraphrases_for

QUESTIONS = ["Who wrote Berserk?", "How many volumes does Monster have?", "Do you ship internationally?"]


def bedrock_teacher(server: BedrockServer, tmp_path: Path, **claude_settings: Any) -> BedrockAssistantTeacher:
    claude = BedrockClaude(
        cache_path=str(tmp_path / "claude.sqlite"),
        endpoint_url=server.endpoint,
        max_retries=0,
        backoff_base_s=0.001,
        read_timeout_s=2.0,
        connect_timeout_s=2.0,
        **claude_settings,
    )
    return BedrockAssistantTeacher(claude=claude, max_tokens=64)


def materialize_responses(teacher, questions=QUESTIONS) -> dg.ExecuteInProcessResult:
    @dg.asset(name="llm_prompts")
    def prompts() -> pd.DataFrame:
        return pd.DataFrame({"question": questions, "origin": "train"})

    return dg.materialize([prompts, teacher_responses], resources={"assistant_teacher": teacher})


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    (materialization,) = result.asset_materializations_for_node("teacher_responses")
    return {key: value.value for key, value in materialization.metadata.items()}


def test_claude_is_asked_each_question_once_with_the_versioned_prompt_at_temperature_0(
    bedrock_server, tmp_path
):
    result = materialize_responses(bedrock_teacher(bedrock_server, tmp_path))
    frame = result.output_for_node("teacher_responses")
    assert sorted(frame["question"]) == sorted(QUESTIONS)
    assert bedrock_server.billed == dict.fromkeys(QUESTIONS, 1)
    body = bedrock_server.bodies[0]
    assert body["system"][0]["text"] == system_prompt().text
    assert body["inferenceConfig"]["temperature"] == 0.0
    reported = metadata(result)
    assert reported["prompt_version"] == system_prompt().version
    assert reported["input_tokens"] == bedrock_server.input_tokens > 0
    assert reported["output_tokens"] == bedrock_server.output_tokens > 0
    assert reported["spent_usd"] > 0


def test_a_second_run_pays_for_nothing_it_already_has(bedrock_server, tmp_path):
    materialize_responses(bedrock_teacher(bedrock_server, tmp_path))
    again = metadata(materialize_responses(bedrock_teacher(bedrock_server, tmp_path)))
    assert (again["sent"], again["cached"], again["spent_usd"]) == (0, len(QUESTIONS), 0.0)
    assert sum(bedrock_server.billed.values()) == len(QUESTIONS)


def test_a_budget_for_one_request_sends_one_keeps_its_answer_and_counts_the_rest(bedrock_server, tmp_path):
    claude = bedrock_teacher(bedrock_server, tmp_path).claude
    worst_cases = [
        claude.prices().worst_case(ChatRequest("k", system_prompt().text, question, 64)).usd
        for question in QUESTIONS
    ]
    teacher = bedrock_teacher(bedrock_server, tmp_path, max_run_usd=max(worst_cases), max_concurrency=1)
    reported = metadata(materialize_responses(teacher))
    assert sum(bedrock_server.billed.values()) == reported["kept"] == 1
    assert reported["over_budget"] == len(QUESTIONS) - 1


def test_answers_longer_than_max_answer_words_are_dropped_as_over_long(bedrock_server, tmp_path):
    claude = bedrock_teacher(bedrock_server, tmp_path).claude
    words = {question: len(json.dumps(paraphrases_for(question, 5)).split()) for question in QUESTIONS}
    limit = sorted(words.values())[1]
    reported = metadata(materialize_responses(BedrockAssistantTeacher(claude=claude, max_answer_words=limit)))
    assert reported["dropped_over_long"] == sum(count > limit for count in words.values()) == 1
    assert reported["kept"] == len(QUESTIONS) - 1


def test_questions_that_fail_are_counted_not_fatal(bedrock_server, tmp_path):
    bedrock_server.inject(Fault("internal", text=QUESTIONS[0], times=5))
    reported = metadata(materialize_responses(bedrock_teacher(bedrock_server, tmp_path)))
    assert (reported["failed"], reported["kept"]) == (1, len(QUESTIONS) - 1)


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("Berserk is by Kentaro Miura.", ""),
        ("   ", "empty"),
        (REFUSAL, "refusal"),
        ("I’m sorry, I can’t help with that.", "refusal"),
        ("word " * 81, "over_long"),
    ],
)
def test_refusals_empty_and_over_long_answers_are_not_training_targets(answer, verdict):
    assert OfflineAssistantTeacher().verdict(answer) == verdict


def test_the_offline_teacher_drops_its_refusals_and_counts_them():
    run = OfflineAssistantTeacher().answer_all(["Who wrote Berserk?", "What's the weather like?"])
    assert run.answers == {
        "Who wrote Berserk?": "Berserk is by Kentaro Miura. Originally published by Hakusensha."
    }
    assert run.dropped == {"refusal": 1}


def test_manga_llm_teacher_bedrock_shares_the_one_claude_client(monkeypatch, tmp_path):
    monkeypatch.setenv("MANGA_LLM_TEACHER", "bedrock")
    resources = bedrock_resources(tmp_path)
    assert isinstance(resources["assistant_teacher"], BedrockAssistantTeacher)
    assert resources["assistant_teacher"].claude is resources["claude"]


def test_a_wrong_manga_llm_teacher_fails_runs_that_need_it_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MANGA_LLM_TEACHER", "Claude")
    teacher = bedrock_resources(tmp_path)["assistant_teacher"]
    assert isinstance(teacher, MisconfiguredResource) and "MANGA_LLM_TEACHER='Claude'" in teacher.problem
