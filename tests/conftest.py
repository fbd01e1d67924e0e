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
