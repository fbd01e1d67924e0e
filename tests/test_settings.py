"""MANGA_* variables: a value that is not allowed is an error naming the variable, the value and what is
allowed, and a wrong Bedrock setting fails only the runs that need Bedrock, not the code location."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphraser import Paraphraser
from manga_distill_assets.resources.unusable import MisconfiguredResource
from manga_distill_assets.settings import BEDROCK_VARIABLES, SettingError, bedrock_resources, choice

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_manga_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*BEDROCK_VARIABLES, "MANGA_PARAPHRASER"]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("value", ["Bedrock", "BEDROCK", "bedrock ", "claude"])
def test_an_unknown_choice_is_an_error_naming_the_variable_and_the_allowed_values(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MANGA_PARAPHRASER", value)

    with pytest.raises(SettingError) as raised:
        choice("MANGA_PARAPHRASER")

    assert str(raised.value).startswith(
        f"MANGA_PARAPHRASER={value!r} is not allowed: use one of offline, bedrock"
    )


def test_an_unset_or_empty_choice_is_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choice("MANGA_PARAPHRASER") == "offline"
    monkeypatch.setenv("MANGA_PARAPHRASER", "")
    assert choice("MANGA_PARAPHRASER") == "offline"


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("MANGA_BEDROCK_MAX_CONCURRENCY", "0", "greater than or equal to 1"),
        ("MANGA_BEDROCK_MAX_CONCURRENCY", "four", "a valid integer"),
        ("MANGA_BEDROCK_API", "invoke", "'converse' or 'invoke_model'"),
        ("MANGA_BEDROCK_MAX_RUN_USD", "$5", "a valid number"),
        ("MANGA_BEDROCK_MAX_RUN_TOKENS", "-1", "greater than or equal to 0"),
        ("MANGA_BEDROCK_READ_TIMEOUT_S", "0", "greater than 0"),
    ],
)
def test_a_bad_bedrock_value_names_the_variable_the_value_and_what_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)

    problem = bedrock_resources(tmp_path)["claude"]

    assert isinstance(problem, MisconfiguredResource)
    assert problem.problem.startswith(f"{variable}={value!r} is not allowed: it should be")
    assert allowed in problem.problem
    assert "\n" not in problem.problem


def test_a_model_without_a_known_price_names_the_price_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANGA_BEDROCK_MODEL_ID", "meta.llama3-8b-instruct-v1:0")

    problem = bedrock_resources(tmp_path)["claude"]

    assert isinstance(problem, MisconfiguredResource)
    assert "MANGA_BEDROCK_INPUT_USD_PER_MTOK" in problem.problem
    monkeypatch.setenv("MANGA_BEDROCK_INPUT_USD_PER_MTOK", "0.3")
    monkeypatch.setenv("MANGA_BEDROCK_OUTPUT_USD_PER_MTOK", "0.6")
    assert isinstance(bedrock_resources(tmp_path)["claude"], BedrockClaude)


def test_a_bad_bedrock_value_makes_the_bedrock_paraphraser_unusable_but_not_the_offline_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANGA_BEDROCK_API", "invoke")
    assert isinstance(bedrock_resources(tmp_path)["paraphraser"], Paraphraser)

    monkeypatch.setenv("MANGA_PARAPHRASER", "bedrock")
    paraphraser = bedrock_resources(tmp_path)["paraphraser"]

    assert isinstance(paraphraser, MisconfiguredResource)
    assert paraphraser.problem.startswith("MANGA_BEDROCK_API='invoke'")


def test_a_run_needing_a_misconfigured_resource_fails_with_its_one_line_reason_and_others_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANGA_PARAPHRASER", "Bedrock")
    resources = bedrock_resources(tmp_path)

    @dg.asset
    def paraphrased(paraphraser: Paraphraser) -> int:
        return len(paraphraser.paraphrase(["Where is my order?"]).paraphrases)

    @dg.asset
    def unrelated() -> int:
        return 1

    failed = dg.materialize([paraphrased], resources=resources, raise_on_error=False)
    assert dg.materialize([unrelated], resources=resources).success

    assert not failed.success
    [init_failure] = [e for e in failed.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert "MANGA_PARAPHRASER='Bedrock' is not allowed" in init_failure.event_specific_data.error.message


def test_the_code_location_loads_with_a_bad_variable_and_says_which(tmp_path: Path) -> None:
    environment = {
        "PATH": "",
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HUB_OFFLINE": "1",
        "MANGA_ARTIFACTS_DIR": str(tmp_path),
        "MANGA_BEDROCK_MAX_RUN_USD": "$5",
    }
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from manga_distill_assets.definitions import defs; print(sorted(defs.resources))",
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert loaded.returncode == 0, loaded.stderr
    assert "'claude'" in loaded.stdout
    assert "MANGA_BEDROCK_MAX_RUN_USD='$5' is not allowed" in loaded.stderr
