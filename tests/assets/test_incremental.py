"""The product promise: a nightly refresh rematerialises only what a change really affects.

One graph is built once (smoke preset) and the scenarios run against it in file order. Each scenario starts
and ends with a settled graph (a tick requests nothing), so they do not lean on each other's leftovers.
"""

import dagster as dg
import pandas as pd
import pytest

from manga_distill_assets.assets.intent_classifier import MODEL_ASSETS
from manga_distill_assets.resources.paraphraser import OfflineParaphraser
from tests.assets.harness import Graph, recent_days, write_day

EARLY_QUERIES = [
    "is the one piece box set 3 back in stock",
    "do you ship frieren vol 10 to canada",
    "my chainsaw man order never arrived",
]
LATER_QUERIES = ["can i preorder kagurabachi volume 5", "which manga is like vinland saga"]


SENT_TO_BACKEND: list[str] = []


class CountingParaphraser(OfflineParaphraser):
    """Records every text that reaches the backend, so a test can count what was really sent."""

    def _paraphrase_batch(self, texts, n):
        SENT_TO_BACKEND.extend(texts)
        return super()._paraphrase_batch(texts, n)


WATCHED = {*MODEL_ASSETS, "labeled_intents", "raw_queries", "unlabeled_queries"}
"""The intent graph this world builds; other targets' groups are never materialised here."""


class Tick:
    """Successive automation evaluations against one instance, carrying the cursor."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.cursor = None

    def __call__(self) -> set[str]:
        result = dg.evaluate_automation_conditions(
            defs=self.graph.defs, instance=self.graph.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        keys = self.graph.defs.resolve_asset_graph().get_all_asset_keys()
        requested = {key.to_user_string() for key in keys if result.get_num_requested(key)}
        return requested & WATCHED


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    graph = Graph(root)
    graph.resources["paraphraser"] = CountingParaphraser(cache_path=str(root / "paraphrases.sqlite"))
    graph.rebuild()
    days = recent_days(3)
    write_day(graph.log_root, days[0], EARLY_QUERIES)
    write_day(graph.log_root, days[1], LATER_QUERIES)
    graph.materialize("labeled_intents")
    for day in days[:2]:
        graph.materialize("raw_queries", partition_key=day)
    graph.materialize("unlabeled_queries", partition_key=days[2])
    graph.materialize(*MODEL_ASSETS)
    tick = Tick(graph)
    tick()
    return graph, tick, days


def test_the_built_graph_is_settled(world):
    _, tick, _ = world
    assert tick() == set()


def test_a_day_rematerialised_with_identical_content_requests_nothing(world):
    graph, tick, days = world
    before = graph.data_version("raw_queries", days[1])
    graph.materialize("raw_queries", partition_key=days[1])
    assert graph.data_version("raw_queries", days[1]) == before
    assert tick() == set()


def test_a_new_day_of_repeats_stops_at_unlabeled_queries(world):
    graph, tick, days = world
    version = graph.data_version("unlabeled_queries", days[2])
    write_day(graph.log_root, days[2], [query.upper() + "?" for query in EARLY_QUERIES] + LATER_QUERIES)
    graph.materialize("raw_queries", partition_key=days[2])
    assert tick() == {"unlabeled_queries"}
    graph.materialize("unlabeled_queries", partition_key=days[2])
    assert graph.data_version("unlabeled_queries", days[2]) == version
    assert tick() == set()


def test_a_day_with_new_queries_reruns_only_the_affected_models(world):
    graph, tick, days = world
    write_day(graph.log_root, days[2], ["is witch hat atelier 13 out in english yet"], name="part-1.jsonl")
    graph.materialize("raw_queries", partition_key=days[2])
    assert tick() == {"unlabeled_queries"}
    graph.materialize("unlabeled_queries", partition_key=days[2])
    requested = []
    for _ in range(7):
        wave = tick()
        requested.append(wave)
        if wave:
            graph.materialize(*sorted(wave))
    # each model once, after every parent it reads has its new content
    assert requested == [
        {"teacher_soft_labels"},
        {"teacher_refined"},
        {"refined_soft_labels", "student_stage1", "baseline_student_teacher_init"},
        {"student_stage2"},
        {"student_onnx"},
        {"eval_report"},
        set(),
    ]


def test_a_changed_labelled_set_paraphrases_only_the_new_texts(world):
    graph, tick, _ = world
    labeled = pd.read_csv(graph.labeled_path)
    new_rows = pd.DataFrame(
        {
            "text": ["does the dandadan deluxe edition come with a slipcase", "what's vagabond vol 37 about"],
            "label": ["product_inquiry", "product_inquiry"],
            "split": ["train", "train"],
        }
    )
    # first in the file: the smoke preset paraphrases only the first train texts
    pd.concat([new_rows, labeled], ignore_index=True).to_csv(graph.labeled_path, index=False)
    graph.materialize("labeled_intents")
    assert "claude_paraphrases" in tick()
    SENT_TO_BACKEND.clear()
    graph.materialize("claude_paraphrases")
    assert sorted(SENT_TO_BACKEND) == sorted(new_rows["text"])
    assert graph.metadata("claude_paraphrases")["sent"] == 2
