"""Answers from a causal LM, and its generation latency at a fixed number of new tokens.

Decoding is greedy, so the same model gives the same answers. Latency is measured at batch 1 with exactly
`new_tokens` generated (EOS ignored), so models that stop early do not look faster than they are; tokens per
second is `new_tokens` over the median time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def _prompts(tokenizer: PreTrainedTokenizerBase, system: str, questions: Sequence[str]) -> list[str]:
    return [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": question}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for question in questions
    ]


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    system: str,
    questions: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    max_time_s: float | None = None,
) -> list[str]:
    """Greedy answers, one per question, decoded without special tokens; `max_time_s` cuts each batch's
    generation off after that many seconds (a deadline), leaving the answer as far as it got."""
    tokenizer.padding_side = "left"
    model.eval()
    answers: list[str] = []
    prompts = _prompts(tokenizer, system, questions)
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            encoded = tokenizer(
                prompts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(model.device)
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                max_time=max_time_s,
            )
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            answers.extend(
                text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            )
    return answers


def generation_latency(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    system: str,
    questions: Sequence[str],
    *,
    new_tokens: int = 32,
    runs: int = 20,
    warmup: int = 2,
) -> dict[str, float]:
    """p50/p99 milliseconds per answer of exactly `new_tokens` tokens, and tokens per second at the median."""
    if not questions or runs < 1:
        raise ValueError("generation_latency needs at least one question and one run.")
    model.eval()
    prompts = _prompts(tokenizer, system, questions)
    timings = []
    with torch.inference_mode():
        for index in range(warmup + runs):
            encoded = tokenizer(prompts[index % len(prompts)], return_tensors="pt", add_special_tokens=False)
            encoded = encoded.to(model.device)
            started = time.perf_counter()
            model.generate(
                **encoded,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            if index >= warmup:
                timings.append((time.perf_counter() - started) * 1000)
    p50 = float(np.percentile(timings, 50))
    return {
        "p50_ms": p50,
        "p99_ms": float(np.percentile(timings, 99)),
        "tokens_per_s": new_tokens / (p50 / 1000),
        "new_tokens": new_tokens,
        "runs": runs,
    }
