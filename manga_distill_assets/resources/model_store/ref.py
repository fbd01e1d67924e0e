"""The small, JSON-able value that assets pass downstream instead of a model.

It is checked on construction (a kind that is a plain name, a sha256 of 64 hex digits) because a reference
comes back from stored JSON and becomes a folder name and an S3 key: a bad one must fail where it is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

_REQUIRED_REF_FIELDS = ("uri", "sha256", "kind")
# A kind becomes a folder name and a key segment, so it must not be able to climb out of the store.
_KIND_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def check_kind(kind: str) -> None:
    if not _KIND_PATTERN.fullmatch(kind):
        raise ValueError(
            f"Model kind {kind!r} is not a plain name: use letters, digits, '_', '-' or '.', "
            "e.g. 'teacher' or 'student_stage1'."
        )


@dataclass(frozen=True)
class ModelRef:
    """What an asset hands downstream instead of a model: where it is, what it is, how good it was."""

    uri: str
    sha256: str
    kind: str
    label_map: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_kind(self.kind)
        if not _SHA256_PATTERN.fullmatch(self.sha256):
            raise ValueError(f"Model reference {self.uri} has sha256 {self.sha256!r}, not 64 hex digits.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def require_labels(self, labels: Sequence[str], used_by: str) -> None:
        """Refuse a model whose class ids mean other labels than the labelled set's: a stale teacher with
        renamed or reordered labels would otherwise train and score every class under the wrong name."""
        model_labels = [self.label_map[key] for key in sorted(self.label_map, key=int)]
        if model_labels == list(labels):
            return
        raise ValueError(
            f"{used_by} cannot use the {self.kind} model {self.sha256[:16]} ({self.uri}): it predicts "
            f"{model_labels} in that order, but the labelled set has {list(labels)}. Re-materialise the "
            f"{self.kind} model on the current labelled set, then {used_by}."
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRef:
        missing = [name for name in _REQUIRED_REF_FIELDS if name not in data]
        if missing:
            raise ValueError(
                f"Not a model reference: {dict(data)!r} lacks {', '.join(missing)}. "
                "Pass the value returned by ModelStore.put (or its to_dict())."
            )
        return cls(
            uri=str(data["uri"]),
            sha256=str(data["sha256"]),
            kind=str(data["kind"]),
            label_map={str(key): str(label) for key, label in data.get("label_map", {}).items()},
            metrics={str(name): float(value) for name, value in data.get("metrics", {}).items()},
        )
