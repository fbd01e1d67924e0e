"""Tiny offline models and texts for tests: a WordPiece tokenizer and BERT teachers small enough to run in ms.

Other test modules import these helpers, so their names and shapes stay stable.
"""

from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast, PreTrainedTokenizerFast

TINY_LABEL_NAMES: tuple[str, ...] = ("order_status", "recommendation", "return_request")

_ORDER, _RECOMMEND, _RETURN = range(3)
_LABELLED_TEXTS: tuple[tuple[str, int], ...] = (
    ("where is my order", _ORDER),
    ("has my manga order shipped yet", _ORDER),
    ("when will volume 3 arrive", _ORDER),
    ("my package is late", _ORDER),
    ("track my order please", _ORDER),
    ("is my box set on the way", _ORDER),
    ("the delivery date changed why", _ORDER),
    ("did you ship the new volumes", _ORDER),
    ("order 1042 still not here", _ORDER),
    ("how long does shipping take", _ORDER),
    ("can you recommend a manga like one piece", _RECOMMEND),
    ("what should i read after naruto", _RECOMMEND),
    ("suggest a short horror manga", _RECOMMEND),
    ("any good romance series", _RECOMMEND),
    ("i want a manga about cooking", _RECOMMEND),
    ("recommend something for a new reader", _RECOMMEND),
    ("which series is like berserk", _RECOMMEND),
    ("best sports manga for teens", _RECOMMEND),
    ("a fun comedy to read tonight", _RECOMMEND),
    ("what is popular this week", _RECOMMEND),
    ("i want to return volume 2", _RETURN),
    ("the book arrived damaged", _RETURN),
    ("how do i get a refund", _RETURN),
    ("wrong manga in my package", _RETURN),
    ("can i send back the box set", _RETURN),
    ("pages are missing from my copy", _RETURN),
    ("refund my order please", _RETURN),
    ("return the damaged volumes", _RETURN),
    ("i got two copies by mistake", _RETURN),
    ("cover is torn i want a new one", _RETURN),
)

TINY_TEXTS: tuple[str, ...] = tuple(text for text, _ in _LABELLED_TEXTS)
TINY_LABELS: tuple[int, ...] = tuple(label for _, label in _LABELLED_TEXTS)

_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]")
_SPLIT_WORDS = {"volumes": ("volume", "##s"), "pages": ("page", "##s"), "missing": ("miss", "##ing")}
_WHOLE_WORDS = tuple(
    sorted(
        {word for text in TINY_TEXTS for word in text.split() if word not in _SPLIT_WORDS}
        | {pieces[0] for pieces in _SPLIT_WORDS.values()}
    )
)
_UNUSED_WORDS = ("dragon", "samurai", "ninja", "isekai", "shonen", "##ball", "##ja", "##ai")
_CHARACTERS = tuple("abcdefghijklmnopqrstuvwxyz0123456789?!.,'")
TINY_VOCAB: tuple[str, ...] = tuple(
    dict.fromkeys(
        _SPECIAL_TOKENS
        + _WHOLE_WORDS
        + ("##s", "##ed", "##ing")
        + _UNUSED_WORDS
        + _CHARACTERS
        + tuple(f"##{character}" for character in _CHARACTERS)
    )
)


def tiny_tokenizer(tmp_path: Path) -> PreTrainedTokenizerFast:
    """An uncased WordPiece tokenizer over TINY_VOCAB, built from a vocab.txt written under `tmp_path`."""
    folder = tmp_path / "tiny_tokenizer"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    return BertTokenizerFast.from_pretrained(folder)


def tiny_teacher(
    num_labels: int = 3, layers: int = 4, hidden: int = 32, heads: int = 4, seed: int = 0
) -> BertForSequenceClassification:
    """A randomly initialised BERT classifier over TINY_VOCAB, in eval mode, the same for the same seed.

    Weights are drawn wider than BERT's default, so different texts and models give clearly different logits.
    The global torch RNG is left as it was, so building a teacher does not shift other tests' randomness.
    """
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        initializer_range=0.2,
        id2label={index: _label_name(index) for index in range(num_labels)},
        label2id={_label_name(index): index for index in range(num_labels)},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification._from_config(config, attn_implementation="eager")
    return model.eval()


def _label_name(index: int) -> str:
    return TINY_LABEL_NAMES[index] if index < len(TINY_LABEL_NAMES) else f"label_{index}"
