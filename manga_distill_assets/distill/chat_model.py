"""The offline student LM: a byte-level BPE tokenizer trained here and a small Llama built from a config.

No causal LM weights can be downloaded on the default path, so the student's base is a Llama-architecture
model with random weights, over a tokenizer trained on the corpus it will serve. The chat template renders
system, user and assistant turns with role tokens, and marks the assistant's text and its end-of-turn token
with `{% generation %}`, so TRL's `assistant_only_loss` trains on exactly what the assistant says, including
when to stop. Any Hugging Face causal LM folder or hub id can stand in for this base (see `load_base`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

PAD, BOS, END = "<|pad|>", "<|bos|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


@dataclass(frozen=True)
class LlamaShape:
    """The offline student's size. The defaults train in about a minute on two CPU cores."""

    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 384
    vocab_size: int = 2048
    max_positions: int = 256


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE over `texts`: every string is encodable (any script, any byte), common words are one
    token. The end-of-turn token doubles as EOS so generation stops where an assistant turn ends."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, END, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=END,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def tiny_llama(tokenizer: PreTrainedTokenizerFast, shape: LlamaShape, seed: int) -> LlamaForCausalLM:
    """A Llama with random weights; the same shape and seed always give the same weights."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def load_base(
    name_or_path: str, *, bf16: bool = False, load_in_4bit: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A pretrained causal LM and its tokenizer (a local folder, or a hub id where downloads are allowed).

    4-bit loading (QLoRA) needs a CUDA GPU and the bitsandbytes package; bf16 halves memory on a GPU.
    A tokenizer without a pad token pads with its EOS token.
    """
    kwargs: dict[str, object] = {"dtype": torch.bfloat16 if bf16 or load_in_4bit else torch.float32}
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise ValueError(
                f"load_in_4bit needs a CUDA GPU; none is visible. Load {name_or_path} without it."
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_causal_lm(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A causal LM saved with `save_pretrained` (safetensors only, never a pickle), in eval mode."""
    folder = Path(folder)
    if not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(
            f"{folder} holds no .safetensors weights. Re-materialise the asset that wrote it; "
            "pickled weights are never loaded."
        )
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    return model.eval(), AutoTokenizer.from_pretrained(folder)
