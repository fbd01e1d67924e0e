"""`make demo` runs under any preset: each of its runs takes the preset's config for the assets it picks."""

import dagster as dg
import pytest

from manga_distill_assets.definitions import defs
from manga_distill_assets.demo import MODEL_ASSETS, run_config_for
from manga_distill_assets.presets import PRESETS

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
