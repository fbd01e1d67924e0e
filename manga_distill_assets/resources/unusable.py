"""A stand-in for a resource that a deployment configured wrongly: the code location still loads (the UI, the
schedules and every asset that does not need it keep working), and any run that needs it fails at its start
with the one-line reason, before anything is read or paid for."""

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field


class MisconfiguredResource(ConfigurableResource):
    """Raises ``problem`` when a run sets it up."""

    problem: str = Field(description="What is wrong with the setting, and what is allowed.")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        raise ValueError(self.problem)
