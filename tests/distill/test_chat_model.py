"""The offline student's tokenizer, chat template and assistant-only masking, and TRL SFT with resume."""

import shutil
from pathlib import Path

import pytest
import torch
from trl.chat_template_utils import is_chat_template_stop_token_trained

from manga_distill_assets.distill.chat_model import LlamaShape, load_causal_lm, tiny_llama, train_tokenizer
from manga_distill_assets.distill.generation import generate_answers
from manga_distill_assets.distill.sft import LoraKnobs, SFTKnobs, build_sft_trainer, conversation, train_sft

SYSTEM = "Answer briefly."
PAIRS = [
    ("Who wrote Berserk?", "Berserk is by Kentaro Miura."),
    ("Who wrote Monster?", "Monster is by Naoki Urasawa."),
]
SHAPE = LlamaShape(hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate_size=64, vocab_size=300)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([SYSTEM, *(text for pair in PAIRS for text in pair)] * 5, vocab_size=300)


def test_the_template_renders_role_tokens_and_ends_every_turn(tokenizer):
    rendered = tokenizer.apply_chat_template(conversation(SYSTEM, *PAIRS[0]), tokenize=False)
    assert rendered == (
        "<|system|>Answer briefly.<|end|><|user|>Who wrote Berserk?<|end|>"
        "<|assistant|>Berserk is by Kentaro Miura.<|end|>"
    )


def test_the_generation_prompt_opens_an_assistant_turn(tokenizer):
    messages = conversation(SYSTEM, *PAIRS[0])[:2]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|end|><|assistant|>")


def test_the_assistant_mask_covers_exactly_the_answer_and_its_end_token(tokenizer):
    encoded = tokenizer.apply_chat_template(
        conversation(SYSTEM, *PAIRS[0]), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [
        token for token, keep in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if keep
    ]
    assert tokenizer.decode(masked) == "Berserk is by Kentaro Miura.<|end|>"
    assert is_chat_template_stop_token_trained(tokenizer)


def test_the_tokenizer_encodes_any_script_and_decodes_it_back(tokenizer):
    text = "呪術廻戦 shōnen ✨"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_the_same_seed_builds_the_same_llama(tokenizer):
    first, second = tiny_llama(tokenizer, SHAPE, seed=3), tiny_llama(tokenizer, SHAPE, seed=3)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert first.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|end|>")


def _train(tokenizer, folder: Path, epochs: float, checkpoint_every: int = 0, lora: LoraKnobs | None = None):
    model = tiny_llama(tokenizer, SHAPE, seed=0)
    knobs = SFTKnobs(
        epochs=epochs,
        batch_size=1,
        learning_rate=1e-2,
        checkpoint_every=checkpoint_every,
        lora=lora or LoraKnobs(),
    )
    return train_sft(model, tokenizer, [conversation(SYSTEM, q, a) for q, a in PAIRS], folder, knobs)


def test_trl_labels_only_the_assistant_turn_for_the_loss(tokenizer, tmp_path):
    model = tiny_llama(tokenizer, SHAPE, seed=0)
    chats = [conversation(SYSTEM, q, a) for q, a in PAIRS]
    trainer = build_sft_trainer(model, tokenizer, chats, tmp_path, SFTKnobs(), progress=lambda event: None)
    for row, (_, answer) in zip(trainer.train_dataset, PAIRS, strict=True):
        labels = torch.tensor(row["labels"])
        assert tokenizer.decode(labels[labels != -100]) == f"{answer}<|end|>"
    assert trainer.args.assistant_only_loss


def test_sft_resumes_from_the_latest_complete_checkpoint_and_ends_like_an_uninterrupted_run(
    tokenizer, tmp_path
):
    uninterrupted = _train(tokenizer, tmp_path, epochs=2, checkpoint_every=1)
    expected = [parameter.detach().clone() for parameter in uninterrupted.model.parameters()]
    shutil.rmtree(tmp_path / "checkpoint-4")  # as if killed before the last checkpoint was written
    resumed = _train(tokenizer, tmp_path, epochs=2, checkpoint_every=1)
    assert resumed.resumed_from == tmp_path / "checkpoint-3"
    assert resumed.optimizer_steps == uninterrupted.optimizer_steps == 4
    for parameter, reference in zip(resumed.model.parameters(), expected, strict=True):
        assert torch.allclose(parameter, reference, atol=1e-5)


def test_lora_trains_adapters_and_returns_a_plain_merged_model(tokenizer, tmp_path):
    result = _train(
        tokenizer, tmp_path / "lora", epochs=1, lora=LoraKnobs(rank=4, target_modules=("q_proj", "v_proj"))
    )
    assert not any("lora" in name for name, _ in result.model.named_parameters())
    assert type(result.model).__name__ == "LlamaForCausalLM"


def test_a_saved_student_loads_from_safetensors_only(tokenizer, tmp_path):
    model = tiny_llama(tokenizer, SHAPE, seed=0)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    loaded, _ = load_causal_lm(tmp_path / "m")
    assert torch.equal(next(loaded.parameters()), next(model.parameters()))
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no \.safetensors"):
        load_causal_lm(tmp_path / "m")


def test_a_student_fine_tuned_to_convergence_answers_in_the_taught_words_and_stops(tokenizer, tmp_path):
    model = tiny_llama(tokenizer, SHAPE, seed=0)
    knobs = SFTKnobs(epochs=150, batch_size=2, learning_rate=1e-2, checkpoint_every=0)
    result = train_sft(model, tokenizer, [conversation(SYSTEM, q, a) for q, a in PAIRS], tmp_path, knobs)
    answers = generate_answers(result.model, tokenizer, SYSTEM, [q for q, _ in PAIRS], max_new_tokens=24)
    assert answers == [a for _, a in PAIRS]
