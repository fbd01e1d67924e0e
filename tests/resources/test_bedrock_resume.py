"""A paraphrasing run killed with SIGKILL loses no paid answer, and its re-run pays for no text twice."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphraser import BedrockParaphraser
from tests.bedrock_server import BedrockServer, Fault, paraphrases_for

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTS = [f"Is volume {volume} of Blue Period in stock?" for volume in range(1, 9)]
# The child paraphrases the texts it is given, with the settings it is given, and is killed mid-way.
CHILD = """
import json, sys
from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphraser import BedrockParaphraser
settings, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
paraphraser = BedrockParaphraser(cache_path=sys.argv[3], claude=BedrockClaude(**settings))
paraphraser.paraphrase(texts, n=2)
"""
START_TIMEOUT_S = 60.0


def _answers_kept(claude_cache_path: Path) -> int:
    """Answers the Claude client committed: the paid ones (the parsed paraphrases follow in batches)."""
    if not claude_cache_path.exists():
        return 0
    with sqlite3.connect(claude_cache_path) as connection:
        return connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def _wait_until(condition: Callable[[], bool], child: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        if child is not None and child.poll() is not None:
            _, stderr = child.communicate()
            raise AssertionError(f"the child ended before it was killed: {stderr.decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.02)


def test_a_run_killed_mid_way_is_resumed_from_the_cache_paying_once_per_text(
    bedrock_server: BedrockServer, tmp_path: Path
) -> None:
    cache_path = tmp_path / "paraphrases.sqlite"
    settings: dict[str, Any] = {
        "cache_path": str(tmp_path / "claude.sqlite"),
        "endpoint_url": bedrock_server.endpoint,
        "max_retries": 0,
        "max_concurrency": 2,
        "read_timeout_s": 60.0,
    }
    hanging = TEXTS[4:6]
    bedrock_server.inject(
        *(Fault("slow", text=text, delay_s=60.0) for text in hanging),
        Fault("slow", times=len(TEXTS), delay_s=0.1),
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(settings), json.dumps(TEXTS), str(cache_path)],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until(lambda: set(bedrock_server.waiting) == set(hanging), child)
        answered_before_kill = _answers_kept(tmp_path / "claude.sqlite")
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    _wait_until(lambda: set(bedrock_server.abandoned) == set(hanging))
    billed_before_kill = Counter(bedrock_server.billed)
    bedrock_server.reset()

    claude = BedrockClaude(**settings)
    batch = BedrockParaphraser(cache_path=str(cache_path), claude=claude).paraphrase(TEXTS, n=2)

    assert set(billed_before_kill) == set(TEXTS[:4])
    assert answered_before_kill == 4
    assert bedrock_server.requests == Counter(TEXTS[4:])
    assert billed_before_kill + bedrock_server.billed == Counter(TEXTS)
    assert batch.paraphrases == {text: paraphrases_for(text, 2) for text in TEXTS}
