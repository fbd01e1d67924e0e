"""`make demo` runs under any preset, and says when a user's labelled file meets the simulated query log."""

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from manga_distill_assets.definitions import defs, simulated_log_with_own_labels
from manga_distill_assets.demo import MODEL_ASSETS, run_config_for
from manga_distill_assets.presets import PRESETS
from manga_distill_assets.resources.labeled_source import LabeledIntentsSource
from manga_distill_assets.resources.query_log import LocalQueryLog, S3QueryLog, SimulatedQueryLog

DEMO_SELECTIONS = {
    "model assets": MODEL_ASSETS,
    "general_student": dg.AssetSelection.assets("general_student"),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("selection", sorted(DEMO_SELECTIONS))
def test_every_presets_config_is_valid_for_each_run_of_the_demo(preset, selection):
    picked = DEMO_SELECTIONS[selection]
    job = dg.define_asset_job("demo_run", selection=picked).resolve(asset_graph=defs.resolve_asset_graph())
    run_config = run_config_for(picked, PRESETS[preset]().ops)
    assert dg.validate_run_config(job, run_config.to_config_dict())


OWN_FILE = LabeledIntentsSource(path="/data/my_intents.csv")


def test_a_labelled_file_of_ones_own_with_the_simulated_log_is_pointed_out():
    warning = simulated_log_with_own_labels({"labeled_source": OWN_FILE, "query_log": SimulatedQueryLog()})
    assert warning is not None
    assert "MANGA_QUERY_LOG_ROOT" in warning and "simulated manga" in warning


@pytest.mark.parametrize(
    "resources",
    [
        {"labeled_source": LabeledIntentsSource(), "query_log": SimulatedQueryLog()},
        {"labeled_source": OWN_FILE, "query_log": LocalQueryLog(root="/data/logs")},
        {"labeled_source": OWN_FILE, "query_log": S3QueryLog(bucket="logs", prefix="q", s3=S3Resource())},
    ],
    ids=["packaged labels", "own log", "own log on S3"],
)
def test_nothing_is_said_when_labels_and_log_belong_together(resources):
    assert simulated_log_with_own_labels(resources) is None
