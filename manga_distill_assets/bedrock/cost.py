"""What a Bedrock request costs, and the most it can cost: the figures the run budget is kept in.

Prices are on-demand list prices per million tokens (``data/bedrock_prices.csv``, from the Bedrock pricing
page); an inference profile id (``us.anthropic...``) is priced as its model. A model not in the table has no
price until the caller gives one, because a budget in dollars is worthless without it.
"""

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from manga_distill_assets.bedrock.requests import ChatRequest

PRICES_CSV = Path(__file__).resolve().parent.parent / "data" / "bedrock_prices.csv"
# Tokens a message adds around its text (role markers, the system block): a generous bound.
MESSAGE_OVERHEAD_TOKENS = 32
# Inference profile ids put a geography in front of the model id.
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.")


@dataclass(frozen=True)
class Spend:
    """Tokens and dollars, added up the same way wherever they are counted."""

    tokens: int = 0
    usd: float = 0.0

    def __add__(self, other: "Spend") -> "Spend":
        return Spend(self.tokens + other.tokens, self.usd + other.usd)

    def __sub__(self, other: "Spend") -> "Spend":
        return Spend(self.tokens - other.tokens, self.usd - other.usd)


@dataclass(frozen=True)
class Prices:
    """USD per million input and output tokens."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def spend(self, input_tokens: int, output_tokens: int) -> Spend:
        usd = (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6
        return Spend(input_tokens + output_tokens, usd)

    def worst_case(self, request: ChatRequest) -> Spend:
        """The most one request can be billed: a token per UTF-8 byte of its prompt (no tokenizer makes a
        token of less than a byte), the message overhead, and a full ``max_tokens`` answer."""
        input_tokens = len(request.system.encode()) + len(request.user.encode()) + MESSAGE_OVERHEAD_TOKENS
        return self.spend(input_tokens, request.max_tokens)


@cache
def list_prices() -> dict[str, Prices]:
    with PRICES_CSV.open(newline="", encoding="utf-8") as handle:
        return {
            row["model"]: Prices(float(row["input_usd_per_mtok"]), float(row["output_usd_per_mtok"]))
            for row in csv.DictReader(handle)
        }


def prices_for(model_id: str, input_usd_per_mtok: float | None, output_usd_per_mtok: float | None) -> Prices:
    """The given prices, else the list prices of the model (or of the model behind an inference profile)."""
    if input_usd_per_mtok is not None and output_usd_per_mtok is not None:
        return Prices(input_usd_per_mtok, output_usd_per_mtok)
    base_id = next((model_id[len(p) :] for p in _PROFILE_PREFIXES if model_id.startswith(p)), model_id)
    listed = list_prices().get(base_id)
    if listed is None:
        raise ValueError(
            f"No price is known for Bedrock model '{model_id}' (priced models: {sorted(list_prices())}). "
            "Set input_usd_per_mtok and output_usd_per_mtok to its on-demand prices, so that the run budget "
            "can be kept in dollars."
        )
    return Prices(
        input_usd_per_mtok if input_usd_per_mtok is not None else listed.input_usd_per_mtok,
        output_usd_per_mtok if output_usd_per_mtok is not None else listed.output_usd_per_mtok,
    )
