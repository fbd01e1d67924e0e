"""The assistant's system prompt, versioned: the version is part of every cached teacher answer's key, so a
changed prompt is asked again rather than served from answers to the old one."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

PROMPTS_CSV = Path(__file__).resolve().parent / "assistant_system_prompts.csv"


@dataclass(frozen=True)
class SystemPrompt:
    version: str
    text: str


def system_prompt(version: str | None = None) -> SystemPrompt:
    """The prompt of `version`, or the newest (last) one in the file."""
    with PROMPTS_CSV.open(encoding="utf-8", newline="") as handle:
        prompts = [SystemPrompt(row["version"], row["text"]) for row in csv.DictReader(handle)]
    if version is None:
        return prompts[-1]
    for prompt in prompts:
        if prompt.version == version:
            return prompt
    known = ", ".join(prompt.version for prompt in prompts)
    raise ValueError(f"No system prompt version {version!r} in {PROMPTS_CSV}; known versions: {known}.")
