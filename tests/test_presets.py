"""Every named run configuration must fit the shipped graph: a key that names no asset would be rejected only
when a user launches the run."""

import pytest

from manga_distill_assets.definitions import defs
from manga_distill_assets.presets import PRESETS

ASSET_NAMES = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_configured_step_of_a_preset_is_an_asset_of_the_graph(name: str) -> None:
    assert set(PRESETS[name]().ops) <= ASSET_NAMES


def test_the_narrow_preset_starts_the_students_and_both_baselines_from_the_general_student() -> None:
    ops = PRESETS["narrow"]().ops
    starts = {
        key: ops[key].student.init
        for key in ("student_stage1", "baseline_student", "baseline_student_teacher_init")
    }
    assert starts == dict.fromkeys(starts, "general")
