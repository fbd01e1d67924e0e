"""Greedy answers from the fallback student, cut off at a deadline."""

import torch
from torch import nn

from manga_distill_assets.distill.chat_model import LlamaShape, tiny_llama, train_tokenizer
from manga_distill_assets.distill.generation import generate_answers

SYSTEM = "Answer briefly."
QUESTION = "Who wrote Berserk?"


def a_llama_that_only_says(word: str):
    """A tiny Llama whose head ignores the text and always picks `word`'s token, so it never ends early."""
    tokenizer = train_tokenizer([SYSTEM, QUESTION, word] * 5, vocab_size=300)
    model = tiny_llama(
        tokenizer, LlamaShape(hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate_size=64), 0
    )
    (token,) = tokenizer(word, add_special_tokens=False)["input_ids"]
    head = nn.Linear(model.config.hidden_size, model.config.vocab_size)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token] = 1.0
    model.lm_head = head
    return model, tokenizer


def test_an_answer_cut_off_at_its_time_limit_is_the_answer_as_far_as_it_got():
    model, tokenizer = a_llama_that_only_says("manga")
    (whole,) = generate_answers(model, tokenizer, SYSTEM, [QUESTION], max_new_tokens=8)
    (cut,) = generate_answers(model, tokenizer, SYSTEM, [QUESTION], max_new_tokens=8, max_time_s=0.0)
    assert whole == "manga" * 8  # the byte-level tokenizer keeps no space between repeats
    assert cut == "manga"  # the limit is checked after each token, so the first one is always kept
