"""Suite-wide settings: offline, single-threaded torch, so tests are fast and repeatable on 2 cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported

import pytest
import torch
from dagster._core.test_utils import freeze_time

from tests.assets.harness import CLOCK

torch.set_num_threads(1)

pytest_plugins = ["tests.s3_server", "tests.postgres_server", "tests.bedrock_server"]


@pytest.fixture(autouse=True, scope="session")
def dagster_clock_held_at_session_start():
    """Partitions, partition mappings and automation read Dagster's clock; one clock for the whole session."""
    with freeze_time(CLOCK):
        yield


LONGEST_MODULES_FIRST = (
    "tests/deploy/test_postgres_instance.py",
    "tests/assets/test_onnx_asset.py",
    "tests/assets/test_incremental.py",
    "tests/assets/test_production_graph.py",
    "tests/assets/test_model_assets.py",
    "tests/assets/test_ensemble_assets.py",
    "tests/assets/test_crash_resume.py",
)
"""The files whose module fixtures materialise whole graphs (1-5 minutes each on 2 cores; `make test` prints
the slowest steps). `make test` hands whole files to its workers in collection order (`--dist loadfile
--no-loadscope-reorder`), so these go first and the short files fill in at the end. xdist's own order, most
tests first, put all seven among the last 38 of 77 files, where one worker could start a 5-minute fixture
while the other had nothing left."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: position for position, path in enumerate(LONGEST_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
