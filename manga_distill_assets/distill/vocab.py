"""Vocabulary pruning: drop the word-embedding rows a deployment never uses.

A 30K-token embedding table is most of a small student's bytes, while a store's queries use a few thousand
tokens. Pruning keeps the special tokens, every token the given texts produce, and every one-character token
(plain and `##`-continued), so words never seen still tokenise into characters rather than [UNK].

Why the texts tokenise exactly as before: WordPiece takes, at each position of a word, the longest vocabulary
entry that matches. Every entry it took for these texts is kept, and the pruned vocabulary is a subset, so the
longest match at each step is unchanged. A word that ends in [UNK] has its matches up to the failure kept too,
so it fails at the same place. The pruned pipeline therefore gives the same logits on these texts.
"""

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from manga_distill_assets.distill.students import model_size_bytes

_ENCODE_BATCH = 1024
# Constructor arguments that point at the original tokenizer's files or vocabulary rather than its settings.
_SOURCE_ARGUMENTS = frozenset(
    {
        "vocab",
        "vocab_file",
        "tokenizer_file",
        "tokenizer_object",
        "name_or_path",
        "added_tokens_decoder",
        "is_local",
        "local_files_only",
    }
)


@dataclass(frozen=True)
class VocabPruning:
    """A pruned model and tokenizer that save and load as any Hugging Face pair, and what pruning saved."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    kept_tokens: int
    original_tokens: int
    bytes_saved: int


def prune_vocabulary(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: Iterable[str]
) -> VocabPruning:
    """Copies of `model` and `tokenizer` that know only the tokens `texts` need (see the module docstring).

    The inputs are left untouched, so the unpruned pair stays available for comparison.
    """
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    _check_wordpiece(backend, tokenizer)
    wordpiece: dict[str, Any] = backend["model"]
    kept_ids = sorted(
        _used_ids(tokenizer, wordpiece, texts) | _special_ids(tokenizer) | _single_character_ids(wordpiece)
    )
    new_id = {old_id: index for index, old_id in enumerate(kept_ids)}
    pruned_model = _prune_model(model, kept_ids, new_id)
    return VocabPruning(
        model=pruned_model,
        tokenizer=_pruned_tokenizer(tokenizer, backend, new_id),
        kept_tokens=len(kept_ids),
        original_tokens=len(wordpiece["vocab"]),
        bytes_saved=model_size_bytes(model) - model_size_bytes(pruned_model),
    )


def _check_wordpiece(backend: dict[str, Any], tokenizer: PreTrainedTokenizerFast) -> None:
    model_type = backend["model"]["type"]
    if model_type != "WordPiece":
        raise ValueError(
            f"Vocabulary pruning supports WordPiece tokenizers (BERT, DistilBERT, MiniLM); "
            f"{type(tokenizer).__name__} uses {model_type}. Skip pruning for this model."
        )


def _used_ids(
    tokenizer: PreTrainedTokenizerFast, wordpiece: dict[str, Any], texts: Iterable[str]
) -> set[int]:
    """Ids the tokenizer produces for `texts`, plus the partial matches of words that became [UNK]."""
    used: set[int] = set()
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == _ENCODE_BATCH:
            used |= _batch_used_ids(tokenizer, wordpiece, batch)
            batch = []
    return used | _batch_used_ids(tokenizer, wordpiece, batch)


def _batch_used_ids(
    tokenizer: PreTrainedTokenizerFast, wordpiece: dict[str, Any], texts: list[str]
) -> set[int]:
    backend = tokenizer.backend_tokenizer
    used: set[int] = set()
    for text, encoding in zip(texts, backend.encode_batch(texts, add_special_tokens=False), strict=True):
        used.update(encoding.ids)
        for token_id, (start, end) in zip(encoding.ids, encoding.offsets, strict=True):
            if token_id == tokenizer.unk_token_id:
                used.update(
                    wordpiece["vocab"][piece]
                    for piece in _pieces_before_unknown(backend, text[start:end], wordpiece)
                )
    return used


def _pieces_before_unknown(backend: Tokenizer, span: str, wordpiece: dict[str, Any]) -> list[str]:
    """The longest-match pieces WordPiece takes in `span` before it gives up on the word."""
    normalized = backend.normalizer.normalize_str(span) if backend.normalizer else span
    words = (
        backend.pre_tokenizer.pre_tokenize_str(normalized) if backend.pre_tokenizer else [(normalized, None)]
    )
    pieces: list[str] = []
    for word, _ in words:
        if len(word) <= wordpiece["max_input_chars_per_word"]:
            pieces.extend(_greedy_pieces(word, wordpiece["vocab"], wordpiece["continuing_subword_prefix"]))
    return pieces


def _greedy_pieces(word: str, vocab: dict[str, int], prefix: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            return pieces
    return pieces


def _special_ids(tokenizer: PreTrainedTokenizerFast) -> set[int]:
    return set(tokenizer.all_special_ids) | set(tokenizer.backend_tokenizer.get_added_tokens_decoder())


def _single_character_ids(wordpiece: dict[str, Any]) -> set[int]:
    prefix = wordpiece["continuing_subword_prefix"]
    return {
        token_id
        for token, token_id in wordpiece["vocab"].items()
        if len(token) == 1 or (token.startswith(prefix) and len(token) == len(prefix) + 1)
    }


def _prune_model(model: PreTrainedModel, kept_ids: Sequence[int], new_id: dict[int, int]) -> PreTrainedModel:
    pruned = copy.deepcopy(model)
    rows = torch.tensor(kept_ids, dtype=torch.long)
    old_input = pruned.get_input_embeddings()
    new_input = nn.Embedding(
        len(kept_ids), old_input.embedding_dim, padding_idx=new_id.get(old_input.padding_idx)
    )
    new_input.weight = nn.Parameter(old_input.weight.detach()[rows].clone())
    pruned.set_input_embeddings(new_input)
    old_output = pruned.get_output_embeddings()
    if old_output is not None:
        pruned.set_output_embeddings(_pruned_linear(old_output, rows))
    pruned.config.vocab_size = len(kept_ids)
    pruned.config.pad_token_id = new_id.get(pruned.config.pad_token_id)
    pruned.tie_weights()
    return pruned


def _pruned_linear(layer: nn.Linear, rows: torch.Tensor) -> nn.Linear:
    pruned = nn.Linear(layer.in_features, len(rows), bias=layer.bias is not None)
    pruned.weight = nn.Parameter(layer.weight.detach()[rows].clone())
    if layer.bias is not None:
        pruned.bias = nn.Parameter(layer.bias.detach()[rows].clone())
    return pruned


def _pruned_tokenizer(
    tokenizer: PreTrainedTokenizerFast, backend: dict[str, Any], new_id: dict[int, int]
) -> PreTrainedTokenizerFast:
    """The original tokenizer's pipeline (normaliser, pre-tokenizer, templates) over the kept vocabulary."""
    pruned = copy.deepcopy(backend)
    pruned["model"]["vocab"] = {
        token: new_id[token_id] for token, token_id in backend["model"]["vocab"].items() if token_id in new_id
    }
    for added in pruned["added_tokens"]:
        added["id"] = new_id[added["id"]]
    if pruned.get("padding"):
        pruned["padding"]["pad_id"] = new_id[pruned["padding"]["pad_id"]]
    _renumber_post_processor(pruned.get("post_processor"), new_id)
    settings = {name: value for name, value in tokenizer.init_kwargs.items() if name not in _SOURCE_ARGUMENTS}
    return type(tokenizer)(tokenizer_object=Tokenizer.from_str(json.dumps(pruned)), **settings)


def _renumber_post_processor(processor: dict[str, Any] | None, new_id: dict[int, int]) -> None:
    if not processor:
        return
    kind = processor["type"]
    if kind == "Sequence":
        for inner in processor["processors"]:
            _renumber_post_processor(inner, new_id)
    elif kind == "TemplateProcessing":
        for special in processor["special_tokens"].values():
            special["ids"] = [new_id[token_id] for token_id in special["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for name in ("sep", "cls"):
            token, token_id = processor[name]
            processor[name] = [token, new_id[token_id]]
    else:
        raise ValueError(
            f"Vocabulary pruning cannot renumber a '{kind}' post-processor; skip pruning for this model."
        )
