"""general_student, materialised for real from a tiny base model (the registered tiny teacher's checkpoint),
and the task stage that starts from it."""

from pathlib import Path

import dagster as dg
import pytest
from transformers import AutoConfig, BertConfig

from manga_distill_assets.assets.general.config import GeneralStudentConfig
from manga_distill_assets.assets.general.student import check_same_vocabulary
from manga_distill_assets.assets.intent_classifier.config import EncoderShape, Stage1Config, StudentShape
from manga_distill_assets.assets.reranker.config import PrunedWidth
from manga_distill_assets.presets import smoke_run_config
from manga_distill_assets.resources.general_corpus import LocalGeneralCorpus
from manga_distill_assets.resources.model_store import ModelRef
from tests.assets.harness import Graph, failure_message, recent_days, registered_teacher, run, write_day

GENERAL_TEXT = [
    " = Tea = ",
    " Tea is an aromatic drink made by pouring hot water over cured leaves . It is the most widely "
    "consumed drink in the world after water . Some teas have a cool , slightly bitter taste , while "
    "others are sweet . ",
    " The bridge crosses the river near the old town . It was built of stone in the 14th century and "
    "carries a narrow road . Floods damaged it twice , and it was repaired each time . ",
    " Mountain weather changes quickly , so hikers carry warm clothes even in summer . ",
] * 4


def general_graph(root, lines) -> Graph:
    graph = Graph(root)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    graph.resources["general_corpus"] = LocalGeneralCorpus(paths=[str(corpus)])
    graph.rebuild()
    return graph


def tiny_general(base: Path) -> GeneralStudentConfig:
    """The smoke preset's general stage, narrowed to fit a 32-wide, 4-head base."""
    return (
        smoke_run_config()
        .ops["general_student"]
        .model_copy(
            update={
                "base_model": str(base),
                "shape": EncoderShape(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32),
            }
        )
    )


def stage1_from_general() -> Stage1Config:
    smoke = smoke_run_config().ops["student_stage1"]
    return smoke.model_copy(update={"student": StudentShape(init="general")})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("general")
    graph = general_graph(root, GENERAL_TEXT)
    (day,) = recent_days(1)
    write_day(graph.log_root, day, ["is the one piece box set 4 in stock", "my jjk order is late"])
    labeled = graph.materialize("labeled_intents").output_for_node("labeled_intents")
    teacher = registered_teacher(root, sorted(labeled["label"].unique()), seed=0)
    assert run(graph, "teacher_model", config=teacher).success
    graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=day)
    graph.materialize("claude_paraphrases", "teacher_soft_labels", "teacher_refined")
    tick = dg.evaluate_automation_conditions(defs=graph.defs, instance=graph.instance)
    requested_before_general = {
        key.to_user_string()
        for key in graph.defs.resolve_asset_graph().get_all_asset_keys()
        if tick.get_num_requested(key)
    }
    missing = run(graph, "student_stage1", config=stage1_from_general())
    base = Path(teacher.registered_checkpoint)
    general = run(graph, "general_student", config=tiny_general(base))
    assert general.success
    return graph, general, requested_before_general, missing, base


def test_the_general_student_has_its_configured_shape_and_the_base_vocabulary(built):
    graph, general, _, _, base = built
    ref = ModelRef.from_dict(general.output_for_node("general_student"))
    config = AutoConfig.from_pretrained(graph.resources["model_store"].get(ref))
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (2, 16, 2)
    assert config.vocab_size == AutoConfig.from_pretrained(base).vocab_size
    metadata = graph.metadata("general_student")
    assert metadata["passages"] == 3  # three paragraphs, each under 48 words, repeated four times
    assert metadata["corpus_files"] == 1


def test_a_second_run_on_the_same_corpus_reuses_the_encoder_with_the_same_version(built):
    graph, general, _, _, base = built
    again = run(graph, "general_student", config=tiny_general(base))
    assert again.output_for_node("general_student") == general.output_for_node("general_student")
    logs = [event.message for event in again.all_events if event.event_type_value == "ENGINE_EVENT"] + [
        record.user_message for record in graph.instance.all_logs(again.run_id)
    ]
    assert any("reusing the encoder" in message for message in logs)


def test_another_corpus_gives_another_data_version(built, tmp_path):
    graph, _, _, _, base = built
    version = graph.data_version("general_student")
    other = general_graph(tmp_path, [*GENERAL_TEXT, " A new paragraph about trains and stations . "])
    assert run(other, "general_student", config=tiny_general(base)).success
    assert other.data_version("general_student") != version


def test_nightly_automation_never_wakes_it_and_its_absence_holds_nothing_back(built):
    _, _, requested, _, _ = built
    assert "general_student" not in requested
    assert "student_stage1" in requested


def test_init_general_before_it_exists_fails_saying_what_to_materialise(built):
    _, _, _, missing, _ = built
    message = failure_message(missing)
    assert "general_student" in message
    assert "never been materialised" in message


def test_a_general_student_of_another_vocabulary_is_refused(tmp_path):
    BertConfig(vocab_size=100).save_pretrained(tmp_path)
    with pytest.raises(dg.Failure, match="another base model"):
        check_same_vocabulary(tmp_path, 30522, "student_stage1")


def test_the_task_stages_start_from_it_and_keep_its_shape(built):
    graph, _, _, _, _ = built
    stage1 = run(graph, "student_stage1", config=stage1_from_general())
    assert stage1.success
    stage2 = graph.materialize("refined_soft_labels", "student_stage2")
    ref = ModelRef.from_dict(stage2.output_for_node("student_stage2"))
    config = AutoConfig.from_pretrained(graph.resources["model_store"].get(ref))
    assert (config.num_hidden_layers, config.hidden_size) == (2, 16)


def test_the_reranker_student_starts_from_it_under_init_general_and_refuses_a_width_in_channels(built):
    graph, _, _, _, base = built
    smoke = smoke_run_config().ops
    general = smoke["reranker_student"].model_copy(update={"init": "general"})
    steps = {
        "rerank_queries": smoke["rerank_queries"],
        "reranker_teacher": smoke["reranker_teacher"].model_copy(update={"base_model": str(base)}),
        "teacher_rerank_scores": smoke["teacher_rerank_scores"],
    }
    for key, config in steps.items():
        assert run(graph, key, config=config).success, key
    sized = general.model_copy(update={"width": PrunedWidth(hidden_size=8)})
    assert "set them to 0" in failure_message(run(graph, "reranker_student", config=sized))
    assert general.width.share < 1  # the share applies to a teacher-layer student, not to general_student
    assert run(graph, "reranker_student", config=general).success
    metadata = graph.metadata("reranker_student")
    assert (metadata["init"], metadata["layers"], metadata["hidden_size"]) == ("general", 2, 16)
