"""One run's Bedrock budget: no request is sent unless the budget covers its worst case.

Three amounts are kept. ``spent``: what answers that arrived were billed. ``reserved``: the worst case
of every request in flight, until it answers. ``abandoned``: the worst case of every request the client gave
up on (a read timeout, a dropped connection): Bedrock may have run it and may bill it, and nobody will ever
say what it cost, so its reservation is never given back. A request is sent only if spent + reserved +
abandoned + its own worst case stays within both limits, so whatever Bedrock bills for this run stays within
them too.
"""

from dataclasses import dataclass, field

from manga_distill_assets.bedrock.cost import Spend


@dataclass
class RunBudget:
    """Limits of 0 mean no limit of that kind."""

    max_tokens: int
    max_usd: float
    spent: Spend = field(default_factory=Spend)
    reserved: Spend = field(default_factory=Spend)
    abandoned: Spend = field(default_factory=Spend)

    @property
    def worst_case(self) -> Spend:
        """The most this run can be billed for what it has sent so far."""
        return self.spent + self.reserved + self.abandoned

    def covers(self, cost: Spend) -> bool:
        total = self.worst_case + cost
        within_tokens = not self.max_tokens or total.tokens <= self.max_tokens
        return within_tokens and (not self.max_usd or total.usd <= self.max_usd)

    def reserve(self, cost: Spend) -> None:
        if not self.covers(cost):
            raise ValueError(f"A request of worst case {cost} does not fit the budget; check covers() first.")
        self.reserved += cost

    def settle(self, reserved: Spend, billed: Spend) -> None:
        """A request answered: its reservation becomes what it was billed."""
        self.reserved -= reserved
        self.spent += billed

    def release(self, reserved: Spend) -> None:
        """A request was refused before the model ran (throttled, a 5xx, never connected): nothing billed."""
        self.reserved -= reserved

    def abandon(self, reserved: Spend) -> None:
        """A request was given up on while the model may still run it: its worst case stays counted."""
        self.reserved -= reserved
        self.abandoned += reserved

    def describe_limits(self) -> str:
        return ", ".join(
            [
                f"max_run_tokens={self.max_tokens:,}" if self.max_tokens else "no token limit",
                f"max_run_usd=${self.max_usd:g}" if self.max_usd else "no dollar limit",
            ]
        )
