"""The fallback-LLM group materialised for real with the smoke preset, on a registered tiny intent router."""

import shutil

import dagster as dg
import pytest
import torch

from manga_distill_assets.assets.fallback_llm.config import LlmEvalConfig
from manga_distill_assets.assets.intent_classifier.config import TeacherConfig
from manga_distill_assets.data.manga_qa import generate_manga_qa
from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.presets import smoke_run_config
from manga_distill_assets.resources.model_store import LocalModelStore, ModelRef, ModelStore
from manga_distill_assets.resources.qa_source import MangaQASource
from tests.assets.harness import Graph, recent_days, write_day
from tests.distill.tiny import tiny_teacher, tiny_tokenizer

LLM_ASSETS = ("manga_qa", "llm_prompts", "teacher_responses", "llm_student", "llm_eval")
INTENTS = sorted(
    [
        "account_help",
        "complaint",
        "order_status",
        "payment_issue",
        "preorder",
        "product_inquiry",
        "recommendation",
        "return_request",
        "shipping",
        "store_availability",
    ]
)
QUERIES = ["who wrote berserk", "anything like frieren?", "my order is late", "is dandadan in stock"]


def register_router(graph: Graph, tmp_path) -> None:
    """A random tiny classifier over the labelled set's intents stands in for the trained one."""
    model = tiny_teacher(num_labels=len(INTENTS))
    model.config.id2label = dict(enumerate(INTENTS))
    model.config.label2id = {label: index for index, label in enumerate(INTENTS)}
    folder = save_model(model, tiny_tokenizer(tmp_path), tmp_path / "router")
    dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("teacher_model"),
        instance=graph.instance,
        resources=graph.resources,
        run_config=dg.RunConfig(ops={"teacher_model": TeacherConfig(registered_checkpoint=str(folder))}),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    graph = Graph(tmp_path_factory.mktemp("llm"))
    (day,) = recent_days(1)
    write_day(graph.log_root, day, QUERIES)
    graph.materialize("labeled_intents")
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=day)
    register_router(graph, tmp_path_factory.mktemp("router"))
    result = graph.materialize(*LLM_ASSETS)
    return graph, result, day


def test_llm_prompts_are_train_questions_and_routed_queries_never_an_eval_question(built):
    _, result, _ = built
    prompts = result.output_for_node("llm_prompts")
    qa = generate_manga_qa()
    held_out = {question.casefold() for question in qa.loc[qa["split"] != "train", "question"]}
    assert not {question.casefold() for question in prompts["question"]} & held_out
    assert set(prompts.loc[prompts["origin"] == "train", "question"]) == set(
        qa.loc[qa["split"] == "train", "question"]
    )
    assert set(prompts.loc[prompts["origin"] == "routed_query", "question"]) <= set(QUERIES)


def test_teacher_responses_drop_and_count_refusals_and_report_tokens(built):
    graph, result, _ = built
    responses = result.output_for_node("teacher_responses")
    metadata = graph.metadata("teacher_responses")
    prompts = result.output_for_node("llm_prompts")
    assert metadata["kept"] == len(responses)
    assert metadata["kept"] + metadata["dropped_refusal"] + metadata["dropped_empty"] + metadata[
        "dropped_over_long"
    ] == len(prompts)
    assert metadata["sent"] == len(prompts) and metadata["cached"] == 0
    assert metadata["output_tokens"] > 0 and metadata["spent_usd"] == 0.0


def test_llm_student_is_stored_with_its_untuned_base(built):
    graph, result, _ = built
    value = result.output_for_node("llm_student")
    student, base = ModelRef.from_dict(value), ModelRef.from_dict(value["base"])
    assert (student.kind, base.kind) == ("llm_student", "llm_student_base")
    assert student.sha256 != base.sha256
    assert graph.metadata("llm_student")["optimizer_steps"] > 0


def test_llm_eval_reports_teacher_student_and_base_with_quality_speed_and_cost(built):
    _, result, _ = built
    report = result.output_for_node("llm_eval")
    for name in ("teacher", "student", "base"):
        row = report[name]
        assert set(row) >= {"fact_accuracy", "token_f1", "judge_score", "refusal_rate", "usd_per_1k_queries"}
        assert 1 <= row["judge_score"] <= 5
    for name in ("student", "base"):
        assert report[name]["p99_ms"] >= report[name]["p50_ms"] > 0
        assert report[name]["tokens_per_s"] > 0
    assert report["fact_retention"] == pytest.approx(
        report["student"]["fact_accuracy"] / report["teacher"]["fact_accuracy"]
    )
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    assert set(checks) == {"student_beats_base", "fact_retention"}


def test_llm_eval_generates_on_its_threads_and_gives_the_process_back_its_own_count(built):
    _, result, _ = built
    assert result.output_for_node("llm_eval")["threads"] == LlmEvalConfig().threads == 2
    assert torch.get_num_threads() == 1  # the suite's count (tests/conftest.py), as before llm_eval ran


def test_a_new_day_of_known_queries_changes_no_prompt(built, tmp_path):
    graph, _, day = built
    before = graph.data_version("llm_prompts")
    write_day(graph.log_root, day, QUERIES, name="part-1.jsonl")
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=day)
    graph.materialize("llm_prompts")
    assert graph.data_version("llm_prompts") == before


def test_a_qa_file_without_the_answer_column_fails_naming_file_and_column(built, tmp_path):
    graph, _, _ = built
    path = tmp_path / "qa.csv"
    path.write_text("question,facts\nWho wrote Berserk?,Kentaro Miura\n", encoding="utf-8")
    resources = {**graph.resources, "qa_source": MangaQASource(path=str(path))}
    result = dg.materialize(
        list(graph.defs.assets),
        selection=dg.AssetSelection.assets("manga_qa"),
        instance=graph.instance,
        resources=resources,
        raise_on_error=False,
    )
    failure = next(event for event in result.all_events if event.is_step_failure)
    message = str(failure.event_specific_data.error)
    assert str(path) in message and "'answer'" in message


class StoreFailingOn(LocalModelStore):
    """The local store, failing to store one kind of model as a full disk would."""

    failing_kind: str

    def put(self, folder, kind, label_map, metrics) -> ModelRef:
        if kind == self.failing_kind:
            raise OSError(f"No space left on device while storing {kind}")
        return super().put(folder, kind, label_map, metrics)


def test_llm_student_resumes_from_its_last_checkpoint_after_a_failed_run_and_then_deletes_them(built):
    graph, _, _ = built
    config = (
        smoke_run_config()
        .ops["llm_student"]
        .model_copy(update={"max_conversations": 48, "epochs": 1.0, "checkpoint_every": 1})
    )
    workspace = graph.root / "artifacts" / "work" / "llm_student"

    def train(store: ModelStore) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            list(graph.defs.assets),
            selection=dg.AssetSelection.assets("llm_student"),
            instance=graph.instance,
            resources={**graph.resources, "model_store": store},
            run_config=dg.RunConfig(ops={"llm_student": config}),
            raise_on_error=False,
        )

    store = graph.resources["model_store"]
    assert not train(StoreFailingOn(root=store.root, failing_kind="llm_student")).success
    *kept, last = sorted(workspace.glob("*/checkpoint-*"), key=lambda folder: int(folder.name.split("-")[1]))
    shutil.rmtree(last)  # as if killed while writing the last checkpoint
    assert train(store).success
    again = graph.metadata("llm_student")
    assert again["resumed_from"] == str(kept[-1])
    assert again["optimizer_steps"] == 3
    assert not list(workspace.glob("*/checkpoint-*"))
