"""Prices and worst cases: the figures the budget is kept in."""

import pytest

from manga_distill_assets.bedrock.cost import MESSAGE_OVERHEAD_TOKENS, Prices, Spend, prices_for
from manga_distill_assets.bedrock.requests import ChatRequest


def test_spend_prices_input_and_output_tokens_per_million() -> None:
    assert Prices(3.0, 15.0).spend(2_000, 1_000) == Spend(3_000, pytest.approx(0.006 + 0.015))


def test_the_worst_case_counts_a_token_per_prompt_byte_and_a_full_answer() -> None:
    request = ChatRequest(key="k", system="Be brief.", user="ワンピース 105巻", max_tokens=100)
    prompt_bytes = 9 + 22  # "Be brief." and 7 kana/kanji of 3 bytes, a space and "105"

    worst = Prices(3.0, 15.0).worst_case(request)

    input_tokens = prompt_bytes + MESSAGE_OVERHEAD_TOKENS
    assert worst == Spend(input_tokens + 100, pytest.approx((input_tokens * 3.0 + 100 * 15.0) / 1e6))


def test_an_inference_profile_is_priced_as_its_model() -> None:
    assert prices_for("us.anthropic.claude-3-haiku-20240307-v1:0", None, None) == Prices(0.25, 1.25)


def test_given_prices_win_over_list_prices() -> None:
    assert prices_for("anthropic.claude-3-haiku-20240307-v1:0", 1.0, None) == Prices(1.0, 1.25)
    assert prices_for("my-own-model", 1.0, 2.0) == Prices(1.0, 2.0)


def test_a_model_without_a_price_is_an_error_naming_it_and_the_settings() -> None:
    with pytest.raises(ValueError, match=r"'meta\.llama3-8b'.*input_usd_per_mtok and output_usd_per_mtok"):
        prices_for("meta.llama3-8b", None, None)
