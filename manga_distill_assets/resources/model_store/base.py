"""What every model store offers (``put`` and ``get``), and the reference plumbing both stores share."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from manga_distill_assets.resources.model_store.ref import ModelRef


class ModelStore(ConfigurableResource):
    """Keeps model folders by content; see the package docstring for the layout and guarantees."""

    @abstractmethod
    def put(
        self,
        folder: Path,
        kind: str,
        label_map: Mapping[Any, str],
        metrics: Mapping[str, float],
    ) -> ModelRef:
        """Store the files under ``folder`` (a no-op when they are already stored) and return their ref."""

    @abstractmethod
    def get(self, ref: ModelRef | Mapping[str, Any]) -> Path:
        """A local folder holding exactly the files that were put under this ref."""


def missing_model_message(ref: ModelRef, problem: str) -> str:
    return (
        f"The {ref.kind} model {ref.sha256[:16]} ({ref.uri}) is not available: {problem}. "
        f"Re-materialise the asset that produced this {ref.kind} model."
    )


def as_ref(ref: ModelRef | Mapping[str, Any]) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else ModelRef.from_dict(ref)


def make_ref(
    uri: str, sha256: str, kind: str, label_map: Mapping[Any, str], metrics: Mapping[str, float]
) -> ModelRef:
    return ModelRef.from_dict(
        {"uri": uri, "sha256": sha256, "kind": kind, "label_map": label_map, "metrics": metrics}
    )
