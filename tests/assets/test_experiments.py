"""The experiment studies and their report, materialised for real on tiny models written straight into
the stores (a tiny teacher, a stage-1 student cut from it, hand-made soft labels): no upstream training."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch

from manga_distill_assets.assets.experiments.config import RecipeStudyConfig, smoke_study_ops
from manga_distill_assets.assets.intent_classifier.config import StudentShape
from manga_distill_assets.definitions import defs, local_resources
from manga_distill_assets.distill.artifacts import save_model
from manga_distill_assets.distill.evaluation import predict_logits
from manga_distill_assets.distill.general import narrow_encoder
from manga_distill_assets.distill.students import StudentSpec, freeze_encoder, from_teacher
from manga_distill_assets.resources.io_manager import encode_value
from tests.distill.tiny import TINY_LABEL_NAMES, TINY_LABELS, TINY_TEXTS, tiny_teacher, tiny_tokenizer

SPLITS = ["train", "train", "train", "validation", "test"]
PARAPHRASES = [  # (text, label, kept by the teacher filter)
    ("where is my package", 0, True),
    ("recommend a short manga", 1, True),
    ("i want a refund", 2, True),
    ("my order is a manga", 1, False),
]
QUERIES = ["is my order late", "any good manga", "refund please"]
SEEDS = (0, 1)


def labeled_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": list(TINY_TEXTS),
            "label": [TINY_LABEL_NAMES[label] for label in TINY_LABELS],
            "split": [SPLITS[row % len(SPLITS)] for row in range(len(TINY_TEXTS))],
        }
    )


def soft_label_frame(labeled: pd.DataFrame) -> pd.DataFrame:
    train = labeled[labeled["split"] == "train"]
    labels = [TINY_LABEL_NAMES.index(label) for label in train["label"]]
    rows = [(text, "labeled", label, True) for text, label in zip(train["text"], labels, strict=True)]
    rows += [(text, "paraphrase", label, kept) for text, label, kept in PARAPHRASES]
    rows += [(text, "unlabeled", -100, True) for text in QUERIES]
    frame = pd.DataFrame(rows, columns=["text", "origin", "label", "keep"])
    frame["source_text"] = ""
    frame["logits"] = [np.eye(3, dtype=np.float32)[max(label, 0)] * 4.0 for label in frame["label"]]
    return frame


def write_asset(root: Path, key: str, value, partition: str = "data") -> None:
    suffix, data = encode_value(value)
    path = root / "assets" / key / f"{partition}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def store_model(resources, tmp_path: Path, model, tokenizer, kind: str) -> dict:
    folder = save_model(model, tokenizer, tmp_path / kind)
    return (
        resources["model_store"]
        .put(folder, kind=kind, label_map=dict(enumerate(TINY_LABEL_NAMES)), metrics={})
        .to_dict()
    )


class Lab:
    """The shipped assets, a tmp artifact folder holding the upstream values, and one ephemeral instance."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.resources = local_resources(root / "artifacts")
        self.instance = dg.DagsterInstance.ephemeral()
        self.teacher, self.tokenizer = tiny_teacher(seed=0), tiny_tokenizer(root)
        self.labeled = labeled_frame()
        self.soft_labels = soft_label_frame(self.labeled)
        write_asset(root / "artifacts", "labeled_intents", self.labeled)
        write_asset(root / "artifacts", "refined_soft_labels", self.soft_labels)
        write_asset(
            root / "artifacts",
            "teacher_refined",
            store_model(self.resources, root, self.teacher, self.tokenizer, "teacher_refined"),
        )
        stage1 = from_teacher(self.teacher, [1, 3])
        write_asset(
            root / "artifacts",
            "student_stage1",
            store_model(self.resources, root, stage1, self.tokenizer, "student_stage1"),
        )
        general = narrow_encoder(StudentSpec(2, 16, 2, 32), self.teacher, seed=0)
        write_asset(
            root / "artifacts",
            "general_student",
            store_model(self.resources, root, general, self.tokenizer, "general_student"),
        )

    def materialize(self, key: str, partition: str | None = None, instance=None, seeds=SEEDS):
        ops = smoke_study_ops(seeds)
        ops["recipe_study"] = RecipeStudyConfig(
            **{**ops["recipe_study"].model_dump(), "student": StudentShape(teacher_layers=[1, 3])}
        )
        ops["init_study"] = ops["init_study"].model_copy(
            update={"student": StudentShape(teacher_layers=[1, 3])}
        )
        return dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.assets(key),
            partition_key=partition,
            instance=instance or self.instance,
            resources=self.resources,
            run_config=dg.RunConfig(ops={key: ops[key]} if key in ops else {}),
        )

    def data_version(self, key: str, partition: str) -> str:
        record = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
        ).records[0]
        return record.asset_materialization.tags["dagster/data_version"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    lab = Lab(tmp_path_factory.mktemp("experiments"))
    lab.results = {}
    for study, partitions in {
        "temperature_study": ["T=1", "T=4"],
        "recipe_study": ["recipe=two_stage", "recipe=output_only", "recipe=feature_only", "recipe=combined"],
        "data_study": ["data=original", "data=+paraphrases", "data=+unlabeled"],
        "init_study": ["init=general", "init=teacher", "init=config"],
    }.items():
        for partition in partitions:
            seeds = SEEDS if study == "temperature_study" else SEEDS[:1]
            lab.results[partition] = lab.materialize(study, partition, seeds=seeds).output_for_node(study)
    lab.report = lab.materialize("experiment_report")
    yield lab
    torch.set_num_threads(previous)


def test_each_study_has_one_partition_per_variant():
    graph = defs.resolve_asset_graph()
    keys = {
        study: graph.get(dg.AssetKey(study)).partitions_def.get_partition_keys()
        for study in ("temperature_study", "alpha_study", "recipe_study", "data_study")
    }

    assert keys == {
        "temperature_study": ["T=1", "T=2", "T=4", "T=8", "T=20"],
        "alpha_study": ["alpha=0.3", "alpha=0.5", "alpha=0.7", "alpha=0.9"],
        "recipe_study": ["recipe=two_stage", "recipe=output_only", "recipe=feature_only", "recipe=combined"],
        "data_study": ["data=original", "data=+paraphrases", "data=+unlabeled"],
    }


def test_studies_run_only_on_demand_and_train_in_the_gpu_pool():
    graph = defs.resolve_asset_graph()
    for study in ("temperature_study", "alpha_study", "recipe_study", "data_study"):
        node = graph.get(dg.AssetKey(study))
        assert node.automation_condition is None
        assert node.pools == {"gpu"}
        assert node.group_name == "distillation_experiments"
    assert graph.get(dg.AssetKey("experiment_report")).automation_condition is None


def test_a_partition_holds_one_row_of_metrics_per_seed(lab):
    frame = lab.results["T=1"]

    assert frame["seed"].tolist() == list(SEEDS)
    assert (frame["variant"] == "T=1").all()
    assert frame[["accuracy", "macro_f1"]].apply(lambda column: column.between(0, 1)).all().all()
    assert (frame["training_seconds"] > 0).all() and frame["final_loss"].notna().all()


def test_retention_is_student_accuracy_over_the_teachers_test_accuracy(lab):
    test = lab.labeled[lab.labeled["split"] == "test"]
    truth = np.array([TINY_LABEL_NAMES.index(label) for label in test["label"]])
    teacher_accuracy = float(
        (predict_logits(lab.teacher, lab.tokenizer, test["text"].tolist()).argmax(1) == truth).mean()
    )
    frame = lab.results["T=4"]

    assert frame["teacher_accuracy"].tolist() == pytest.approx([teacher_accuracy] * len(SEEDS))
    assert frame["retention"].tolist() == pytest.approx((frame["accuracy"] / teacher_accuracy).tolist())


def test_the_same_seed_reproduces_the_same_metrics(lab):
    before = lab.data_version("temperature_study", "T=1")
    again = lab.materialize("temperature_study", "T=1").output_for_node("temperature_study")

    assert lab.data_version("temperature_study", "T=1") == before
    pd.testing.assert_frame_equal(
        again.drop(columns="training_seconds"), lab.results["T=1"].drop(columns="training_seconds")
    )


def test_data_variants_restrict_the_stage2_transfer_set(lab):
    train = int((lab.labeled["split"] == "train").sum())
    kept_paraphrases = sum(kept for _, _, kept in PARAPHRASES)

    assert lab.results["data=original"]["transfer_rows"].iloc[0] == train
    assert lab.results["data=+paraphrases"]["transfer_rows"].iloc[0] == train + kept_paraphrases
    assert lab.results["data=+unlabeled"]["transfer_rows"].iloc[0] == train + kept_paraphrases + len(QUERIES)


def test_every_recipe_trains_on_its_own_data(lab):
    everything = int(lab.soft_labels["keep"].sum())
    train = int((lab.labeled["split"] == "train").sum())
    rows = {
        recipe: lab.results[f"recipe={recipe}"]["transfer_rows"].iloc[0]
        for recipe in ("two_stage", "output_only", "feature_only", "combined")
    }

    assert rows == {
        "two_stage": everything,
        "output_only": everything,
        "feature_only": train,
        "combined": everything,
    }


def test_every_start_is_distilled_and_scored_once_per_seed_and_reported(lab):
    for variant in ("init=general", "init=teacher", "init=config"):
        frame = lab.results[variant]
        assert frame["seed"].tolist() == [SEEDS[0]]
        assert frame["retention"].iloc[0] == pytest.approx(
            frame["accuracy"].iloc[0] / frame["teacher_accuracy"].iloc[0]
        )
        assert frame["transfer_rows"].iloc[0] == int(lab.soft_labels["keep"].sum())
    studies = lab.report.output_for_node("experiment_report")["studies"]
    assert studies["init_study"]["missing"] == []
    assert studies["init_study"]["verdict"] is not None


def test_feature_only_fits_the_head_and_freezes_the_encoder():
    model = tiny_teacher()
    freeze_encoder(model)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}

    assert trainable == {"classifier.weight", "classifier.bias"}


def test_the_report_summarises_each_materialised_variant_over_its_seeds(lab):
    report = lab.report.output_for_node("experiment_report")
    temperature = report["studies"]["temperature_study"]
    t1 = next(variant for variant in temperature["variants"] if variant["variant"] == "T=1")

    assert [variant["variant"] for variant in temperature["variants"]] == ["T=1", "T=4"]
    assert t1["seeds"] == list(SEEDS)
    assert t1["accuracy"]["mean"] == pytest.approx(lab.results["T=1"]["accuracy"].mean())
    assert t1["accuracy"]["std"] == pytest.approx(lab.results["T=1"]["accuracy"].std(ddof=1))
    higher_mean = max(("T=1", "T=4"), key=lambda variant: lab.results[variant]["accuracy"].mean())
    assert temperature["verdict"]["best"] == higher_mean


def test_the_report_lists_missing_partitions_instead_of_failing(lab):
    studies = lab.report.output_for_node("experiment_report")["studies"]

    assert studies["temperature_study"]["missing"] == ["T=2", "T=8", "T=20"]
    assert studies["alpha_study"]["missing"] == ["alpha=0.3", "alpha=0.5", "alpha=0.7", "alpha=0.9"]
    assert studies["alpha_study"]["verdict"] is None
    assert studies["recipe_study"]["missing"] == []


def test_the_report_shows_tables_verdicts_and_the_temperature_plot_in_the_ui(lab):
    (materialization,) = lab.report.asset_materializations_for_node("experiment_report")
    summary = materialization.metadata["summary"].value

    assert "### temperature_study" in summary and "±" in summary and "**Verdict:**" in summary
    assert "Missing partitions: T=2, T=8, T=20" in summary
    assert materialization.metadata["accuracy_vs_temperature"].value.startswith(
        "![accuracy against T](data:image/png;base64,"
    )


def test_the_report_json_and_plot_are_stored_in_the_model_store(lab):
    (materialization,) = lab.report.asset_materializations_for_node("experiment_report")
    folder = Path(materialization.metadata["report_uri"].value.removeprefix("file://"))

    assert folder.parent == lab.root / "artifacts" / "models" / "experiment_report"
    assert json.loads((folder / "experiment_report.json").read_text()) == lab.report.output_for_node(
        "experiment_report"
    )
    assert (folder / "accuracy_vs_temperature.png").read_bytes().startswith(b"\x89PNG")


def test_a_report_before_any_study_ran_lists_every_partition_as_missing(lab):
    result = lab.materialize("experiment_report", instance=dg.DagsterInstance.ephemeral())
    studies = result.output_for_node("experiment_report")["studies"]

    assert all(part["variants"] == [] and part["verdict"] is None for part in studies.values())
    assert studies["data_study"]["missing"] == ["data=original", "data=+paraphrases", "data=+unlabeled"]
