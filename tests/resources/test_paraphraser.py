"""The paraphrase cache and the cached paraphraser resources (Bedrock itself: test_bedrock_paraphraser.py)."""

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from pydantic import PrivateAttr

from manga_distill_assets.data.paraphrase import offline_paraphrases
from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphrase_cache import CacheKey, ParaphraseCache
from manga_distill_assets.resources.paraphraser import (
    BackendAnswer,
    BedrockParaphraser,
    OfflineParaphraser,
)

KEY = CacheKey(backend="bedrock", model_id="claude", prompt_version="v1", text="Where is my order?", n=5)
MODEL_ID = "anthropic.claude-3-5-sonnet-20241022-v2:0"


class CountingParaphraser(OfflineParaphraser):
    """Offline paraphrases, remembering every batch that reached the backend."""

    _batches: list[list[str]] = PrivateAttr(default_factory=list)

    @property
    def sent_batches(self) -> list[list[str]]:
        return self._batches

    @property
    def sent_texts(self) -> list[str]:
        return [text for batch in self._batches for text in batch]

    def _paraphrase_batch(self, texts: Sequence[str], n: int) -> list[BackendAnswer]:
        self._batches.append(list(texts))
        return super()._paraphrase_batch(texts, n)


class FailingOnSecondBatchParaphraser(OfflineParaphraser):
    """Answers one batch, then fails as a killed or refused run would."""

    _calls: int = PrivateAttr(default=0)

    def _paraphrase_batch(self, texts: Sequence[str], n: int) -> list[BackendAnswer]:
        self._calls += 1
        if self._calls > 1:
            raise RuntimeError("backend went away")
        return super()._paraphrase_batch(texts, n)


# The cache


def test_cache_returns_what_was_put_after_reopening(tmp_path: Path) -> None:
    ParaphraseCache(tmp_path / "cache.sqlite").put_many({KEY: ["Where's my order?", "Any news on my order?"]})

    assert ParaphraseCache(tmp_path / "cache.sqlite").get_many([KEY]) == {
        KEY: ["Where's my order?", "Any news on my order?"]
    }


def test_cache_leaves_out_keys_never_put(tmp_path: Path) -> None:
    cache = ParaphraseCache(tmp_path / "cache.sqlite")
    cache.put_many({KEY: ["Where's my order?"]})

    assert cache.get_many([replace(KEY, text="Is it in stock?")]) == {}


@pytest.mark.parametrize(
    "changed",
    [
        {"backend": "offline"},
        {"model_id": "claude-haiku"},
        {"prompt_version": "v2"},
        {"text": "where is my order?"},
        {"n": 3},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_cache_misses_when_any_key_field_differs(tmp_path: Path, changed: dict[str, object]) -> None:
    cache = ParaphraseCache(tmp_path / "cache.sqlite")
    cache.put_many({KEY: ["Where's my order?"]})

    assert cache.get_many([replace(KEY, **changed)]) == {}


def test_cache_commits_each_batch_before_put_many_returns(tmp_path: Path) -> None:
    writer = ParaphraseCache(tmp_path / "cache.sqlite")
    reader = ParaphraseCache(tmp_path / "cache.sqlite")

    writer.put_many({KEY: ["Where's my order?"]})

    assert reader.get_many([KEY]) == {KEY: ["Where's my order?"]}


def test_cache_looks_up_more_keys_than_sqlite_binds_in_one_statement(tmp_path: Path) -> None:
    keys = [replace(KEY, text=f"query {i}") for i in range(1200)]
    cache = ParaphraseCache(tmp_path / "cache.sqlite")
    cache.put_many({key: [key.text.upper()] for key in keys})

    assert cache.get_many(keys) == {key: [key.text.upper()] for key in keys}


def test_cache_rows_hold_the_key_fields_and_their_sha256(tmp_path: Path) -> None:
    ParaphraseCache(tmp_path / "cache.sqlite").put_many({KEY: ["Where's my order?"]})

    with sqlite3.connect(tmp_path / "cache.sqlite") as connection:
        row = connection.execute(
            "SELECT key_sha256, backend, model_id, prompt_version, text, n, paraphrases_json FROM paraphrases"
        ).fetchone()

    assert re.fullmatch(r"[0-9a-f]{64}", row[0])
    assert row[1:] == ("bedrock", "claude", "v1", "Where is my order?", 5, json.dumps(["Where's my order?"]))


def test_cache_on_a_file_that_is_not_sqlite_names_the_file(tmp_path: Path) -> None:
    not_a_cache = tmp_path / "notes.sqlite"
    not_a_cache.write_text("these are my notes, not a database " * 100)

    with pytest.raises(sqlite3.DatabaseError, match=re.escape(str(not_a_cache))):
        ParaphraseCache(not_a_cache)


# The cached paraphraser


def test_second_call_with_the_same_texts_sends_nothing(tmp_path: Path) -> None:
    texts = ["Where is my order?", "Is One Piece volume 105 in stock?"]
    first = CountingParaphraser(cache_path=str(tmp_path / "cache.sqlite")).paraphrase(texts, n=3)
    again = CountingParaphraser(cache_path=str(tmp_path / "cache.sqlite"))

    second = again.paraphrase(texts, n=3)

    assert again.sent_texts == []
    assert (second.sent, second.cached) == (0, 2)
    assert second.paraphrases == first.paraphrases


def test_a_call_with_one_new_text_sends_only_that_text(tmp_path: Path) -> None:
    paraphraser = CountingParaphraser(cache_path=str(tmp_path / "cache.sqlite"))
    paraphraser.paraphrase(["Where is my order?"], n=3)

    batch = paraphraser.paraphrase(["Where is my order?", "Can you recommend a manga?"], n=3)

    assert paraphraser.sent_texts == ["Where is my order?", "Can you recommend a manga?"]
    assert (batch.sent, batch.cached) == (1, 1)
    assert set(batch.paraphrases) == {"Where is my order?", "Can you recommend a manga?"}


def test_a_text_repeated_in_one_call_is_sent_once(tmp_path: Path) -> None:
    paraphraser = CountingParaphraser(cache_path=str(tmp_path / "cache.sqlite"))

    batch = paraphraser.paraphrase(["Where is my order?", "Where is my order?"], n=3)

    assert paraphraser.sent_texts == ["Where is my order?"]
    assert batch.sent == 1


def test_asking_for_another_number_of_paraphrases_sends_the_text_again(tmp_path: Path) -> None:
    paraphraser = CountingParaphraser(cache_path=str(tmp_path / "cache.sqlite"))
    paraphraser.paraphrase(["Where is my order?"], n=3)

    paraphraser.paraphrase(["Where is my order?"], n=5)

    assert paraphraser.sent_texts == ["Where is my order?", "Where is my order?"]


def test_texts_are_sent_in_batches_of_batch_size(tmp_path: Path) -> None:
    paraphraser = CountingParaphraser(cache_path=str(tmp_path / "cache.sqlite"), batch_size=2)

    paraphraser.paraphrase(["a query", "b query", "c query", "d query", "e query"], n=2)

    assert paraphraser.sent_batches == [["a query", "b query"], ["c query", "d query"], ["e query"]]


def test_batches_answered_before_a_failure_stay_cached(tmp_path: Path) -> None:
    cache_path = str(tmp_path / "cache.sqlite")
    with pytest.raises(RuntimeError, match="backend went away"):
        FailingOnSecondBatchParaphraser(cache_path=cache_path, batch_size=1).paraphrase(
            ["Where is my order?", "Can you recommend a manga?"], n=3
        )
    resumed = CountingParaphraser(cache_path=cache_path)

    resumed.paraphrase(["Where is my order?", "Can you recommend a manga?"], n=3)

    assert resumed.sent_texts == ["Can you recommend a manga?"]


def test_offline_paraphraser_gives_the_offline_paraphrases_for_free(tmp_path: Path) -> None:
    batch = OfflineParaphraser(cache_path=str(tmp_path / "cache.sqlite"), seed=4).paraphrase(
        ["Is One Piece volume 105 in stock?"], n=4
    )

    assert batch.paraphrases == {
        "Is One Piece volume 105 in stock?": offline_paraphrases(
            "Is One Piece volume 105 in stock?", n=4, seed=4
        )
    }
    assert (batch.input_tokens, batch.output_tokens, batch.estimated_cost_usd) == (0, 0, 0.0)


def test_offline_paraphraser_does_not_serve_another_seeds_answers(tmp_path: Path) -> None:
    OfflineParaphraser(cache_path=str(tmp_path / "cache.sqlite"), seed=0).paraphrase(["Where is my order?"])

    batch = OfflineParaphraser(cache_path=str(tmp_path / "cache.sqlite"), seed=1).paraphrase(
        ["Where is my order?"]
    )

    assert batch.sent == 1


def test_asking_for_no_paraphrases_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OfflineParaphraser(cache_path=str(tmp_path / "cache.sqlite")).paraphrase(["Where is my order?"], n=0)


def test_offline_paraphraser_serves_an_asset_in_a_dagster_run(tmp_path: Path) -> None:
    @dg.asset
    def paraphrased(
        context: dg.AssetExecutionContext, paraphraser: OfflineParaphraser
    ) -> dict[str, list[str]]:
        return paraphraser.paraphrase(["Where is my order?"], n=2, log=context.log).paraphrases

    result = dg.materialize(
        [paraphrased],
        resources={"paraphraser": OfflineParaphraser(cache_path=str(tmp_path / "cache.sqlite"))},
    )

    assert result.output_for_node("paraphrased") == {
        "Where is my order?": offline_paraphrases("Where is my order?", n=2)
    }


def test_bedrock_paraphraser_config_reaches_an_asset_in_a_dagster_run(tmp_path: Path) -> None:
    @dg.asset
    def configured(paraphraser: BedrockParaphraser) -> tuple[str, str, str | None]:
        claude = paraphraser.claude
        return claude.model_id, claude.region_name, claude.endpoint_url

    claude = BedrockClaude(cache_path=str(tmp_path / "claude.sqlite"), region_name="eu-central-1")
    resource = BedrockParaphraser(cache_path=str(tmp_path / "cache.sqlite"), claude=claude)
    result = dg.materialize([configured], resources={"paraphraser": resource})

    assert result.output_for_node("configured") == (MODEL_ID, "eu-central-1", None)
