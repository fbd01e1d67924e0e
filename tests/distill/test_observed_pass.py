"""A pass of calibration batches under forward hooks: what it runs, and that it leaves no hook behind."""

import pytest
import torch

from manga_distill_assets.distill.observed_pass import observe
from tests.distill.tiny import tiny_teacher


def batch(tokens: int) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.ones(2, tokens, dtype=torch.long), "attention_mask": torch.ones(2, tokens)}


def test_every_batch_runs_in_eval_mode_without_gradients_and_the_hooks_are_removed_after():
    model = tiny_teacher().train()
    seen: list[tuple[bool, bool, int]] = []
    hook = model.bert.embeddings.register_forward_hook(
        lambda module, _args, output: seen.append((module.training, torch.is_grad_enabled(), output.shape[1]))
    )
    before: list[int] = []

    count = observe(
        model, [batch(3), batch(5)], [hook], before_each=lambda b: before.append(b["input_ids"].shape[1])
    )

    assert count == 2
    assert before == [3, 5]
    assert seen == [(False, False, 3), (False, False, 5)]
    model(**batch(4))
    assert len(seen) == 2  # the hook is gone


def test_the_hooks_are_removed_when_a_batch_fails():
    model = tiny_teacher()
    calls: list[int] = []
    hook = model.bert.embeddings.register_forward_hook(lambda *_: calls.append(1))

    def fail_on_the_second(b: dict[str, torch.Tensor]) -> None:
        if calls:
            raise RuntimeError("the second batch broke")

    with pytest.raises(RuntimeError, match="second batch broke"):
        observe(model, [batch(3), batch(4)], [hook], before_each=fail_on_the_second)

    assert calls == [1]
    model(**batch(3))
    assert calls == [1]  # the hook is gone
