"""Small markdown tables for materialisation metadata (the UI renders them)."""

from collections.abc import Mapping, Sequence

import pandas as pd


def markdown_table(rows: Sequence[Mapping[str, object]]) -> str:
    if not rows:
        return "_empty_"
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(row.get(h, "")) for h in headers) + " |" for row in rows]
    return "\n".join(lines)


def frame_markdown(frame: pd.DataFrame, index_name: str | None = None) -> str:
    frame = frame.reset_index() if index_name is not None else frame
    return markdown_table(frame.to_dict(orient="records"))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
