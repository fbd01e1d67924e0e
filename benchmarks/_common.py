"""What every benchmark script shares: where results go, how they are written, how threads are pinned, and how
a student shape is written on the command line.

Scripts run as `.venv/bin/python benchmarks/<name>.py`, so Python puts this folder on the path and they import
this module as `_common`. Timings on a shared machine are only comparable with the thread count fixed, so
each script pins it here and records it in its JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from manga_distill_assets.distill.students import StudentSpec

RESULTS = Path(__file__).parent / "results"


def write_results(report: Any, path: Path) -> Path:
    """The report as indented JSON at `path` (its folder created), announced on stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return path


def pin_torch_threads(threads: int) -> None:
    """Intra-op threads for every torch call in this process; imported lazily for scripts without torch."""
    import torch

    torch.set_num_threads(threads)


def pin_to_one_core() -> str:
    """Bind this process to one CPU core, so single-threaded timings do not hop between cores."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def parse_shape(text: str) -> StudentSpec:
    """`LxHxAxF` (layers x hidden x heads x feed-forward, e.g. 3x192x6x768) as a student shape."""
    from manga_distill_assets.distill.students import StudentSpec

    layers, hidden, heads, feed_forward = (int(part) for part in text.split("x"))
    return StudentSpec(layers, hidden, heads, feed_forward)
