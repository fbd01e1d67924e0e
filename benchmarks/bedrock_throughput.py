"""Paraphrased texts per second under Bedrock faults: botocore's adaptive and standard retry modes against
this project's client (``BedrockClaude``: one botocore attempt, its own retries and throttle-aware send
rate).

Runs against the loopback Bedrock-protocol server of the tests (``tests/bedrock_server.py``), so no AWS
account is needed and nothing is billed. Three fault mixes:

- ``none``: no fault, the ceiling that concurrency and the model's latency allow on this machine;
- ``random``: every request, whatever the rate, is throttled with probability 30%, fails with a 5xx with 5%,
  answers prose instead of a JSON list with 3% (the mix of issue 13);
- ``quota``: a quota of ``--quota`` requests/s (a token bucket, as Bedrock's on-demand quota), over which
  requests are throttled, plus 5% 5xx and 3% malformed.

The botocore rows reproduce the paraphraser as it was before the shared client: ``max_concurrency`` threads,
botocore's retry mode with 5 attempts, then up to 3 extra tries after a jittered pause (2 s doubling, at most
60 s), and one more request for a malformed answer. Our row is ``BedrockParaphraser`` over ``BedrockClaude``
with its defaults. Each side starts from an empty cache.

    .venv/bin/python benchmarks/bedrock_throughput.py                      # 200 texts, concurrency 4
    .venv/bin/python benchmarks/bedrock_throughput.py --texts 100 --modes ours standard

Prints a table and writes benchmarks/results/bedrock_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from manga_distill_assets.bedrock.errors import Outcome, classify
from manga_distill_assets.data.paraphrase import build_prompt, is_list_answer, parse_paraphrases
from manga_distill_assets.resources.claude import BedrockClaude
from manga_distill_assets.resources.paraphraser import BedrockParaphraser
from tests.bedrock_server import LOCAL_HOSTS, BedrockServer, start_bedrock_server

RESULTS = Path(__file__).parent / "results"
MODEL_ID = "anthropic.claude-3-5-sonnet-20241022-v2:0"
PER_TEXT = 5


@dataclass
class Measurement:
    scenario: str
    mode: str
    texts: int
    paraphrased: int
    seconds: float
    texts_per_s: float
    requests: int
    throttled_requests: int
    error: str | None = None


def _botocore_paraphrases(server: BedrockServer, mode: str, texts: list[str], concurrency: int) -> int:
    """The former dispatch: threads, botocore's retries, extra retries after a pause, one malformed re-ask."""
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=server.endpoint,
        config=Config(
            retries={"mode": mode, "total_max_attempts": 5},
            read_timeout=60,
            max_pool_connections=max(10, concurrency),
        ),
    )
    rng = random.Random(0)

    def ask(prompt: str) -> str:
        for extra in range(4):
            try:
                response = client.converse(
                    modelId=MODEL_ID,
                    messages=[{"role": "user", "content": [{"text": prompt}]}],
                    inferenceConfig={"maxTokens": 512, "temperature": 0.8},
                )
                return response["output"]["message"]["content"][0]["text"]
            except (ClientError, BotoCoreError) as error:
                if extra == 3 or classify(error) is Outcome.FATAL:
                    raise
                time.sleep(rng.uniform(0, min(60.0, 2.0 * 2**extra)))
        raise AssertionError("unreachable")

    def paraphrase(text: str) -> list[str]:
        prompt = build_prompt(text, PER_TEXT, "v1")
        answer = ask(prompt)
        if not is_list_answer(answer):
            answer = ask(prompt)
        return parse_paraphrases(answer, source=text, n=PER_TEXT)[0]

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(1 for paraphrases in pool.map(paraphrase, texts) if paraphrases)


def _our_paraphrases(server: BedrockServer, texts: list[str], concurrency: int, folder: Path) -> int:
    claude = BedrockClaude(
        cache_path=str(folder / "claude.sqlite"),
        endpoint_url=server.endpoint,
        max_concurrency=concurrency,
        temperature=0.8,
    )
    paraphraser = BedrockParaphraser(cache_path=str(folder / "paraphrases.sqlite"), claude=claude)
    batch = paraphraser.paraphrase(texts, n=PER_TEXT)
    return sum(1 for paraphrases in batch.paraphrases.values() if paraphrases)


def measure(
    server: BedrockServer,
    scenario: str,
    mode: str,
    texts: list[str],
    concurrency: int,
    args: argparse.Namespace,
) -> Measurement:
    server.reset()
    server.latency_s = args.latency_s
    if scenario == "none":
        server.randomise({}, seed=args.seed)
    elif scenario == "random":
        server.randomise({"throttle": 0.3, "internal": 0.05, "malformed": 0.03}, seed=args.seed)
    else:
        server.randomise({"internal": 0.05, "malformed": 0.03}, seed=args.seed)
        server.limit_rate(args.quota)
    error = None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        try:
            if mode == "ours":
                paraphrased = _our_paraphrases(server, texts, concurrency, Path(folder))
            else:
                paraphrased = _botocore_paraphrases(server, mode, texts, concurrency)
        except Exception as failure:  # a row that failed is a result too
            paraphrased, error = 0, f"{type(failure).__name__}: {str(failure)[:200]}"
    seconds = time.perf_counter() - started
    server.wait_until_idle()
    return Measurement(
        scenario=scenario,
        mode=mode,
        texts=len(texts),
        paraphrased=paraphrased,
        seconds=round(seconds, 2),
        texts_per_s=round(paraphrased / seconds, 2),
        requests=server.requests.total(),
        throttled_requests=server.errors["throttle"],
        error=error,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--latency-s", type=float, default=0.05, help="the model's answer time (default 0.05)"
    )
    parser.add_argument("--quota", type=float, default=20.0, help="requests/s of the quota scenario")
    parser.add_argument(
        "--scenarios", nargs="+", default=["none", "random", "quota"], choices=["none", "random", "quota"]
    )
    parser.add_argument("--modes", nargs="+", default=["adaptive", "standard", "ours"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark-key-not-real")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark-secret-not-real")
    os.environ["NO_PROXY"] = ",".join(filter(None, [LOCAL_HOSTS, os.environ.get("NO_PROXY")]))
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_PROFILE"):
        os.environ.pop(name, None)
    texts = [f"Is volume {volume} of Blue Period in stock?" for volume in range(args.texts)]
    server = start_bedrock_server()
    try:
        rows = [
            measure(server, scenario, mode, texts, args.concurrency, args)
            for scenario in args.scenarios
            for mode in args.modes
        ]
    finally:
        server.stop()
    print(f"{args.texts} texts, concurrency {args.concurrency}, model latency {args.latency_s} s")
    header = ("scenario", "mode", "texts/s", "seconds", "done", "requests", "throttled")
    print("{:<8} {:<9} {:>8} {:>8} {:>5} {:>9} {:>9}".format(*header))
    for row in rows:
        print(
            f"{row.scenario:<8} {row.mode:<9} {row.texts_per_s:>8.2f} {row.seconds:>8.1f} "
            f"{row.paraphrased:>5} {row.requests:>9} {row.throttled_requests:>9}"
            + (f"  {row.error}" if row.error else "")
        )
    RESULTS.mkdir(exist_ok=True)
    settings: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in {"scenarios", "modes"}}
    path = RESULTS / "bedrock_throughput.json"
    path.write_text(json.dumps({"settings": settings, "rows": [asdict(row) for row in rows]}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
