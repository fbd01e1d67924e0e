"""TinyBERT's general distillation: a narrow encoder learns a pre-trained one's embeddings, hidden states and
attention maps on general text, before it sees any task.

The narrow student is built from the base model's config at a smaller shape, so it shares the base's tokenizer
and vocabulary (the task stage prunes the vocabulary to its own texts). Its token, position and token-type
embeddings start as the base's, projected onto the base word embeddings' top principal directions, and the
token table stays fixed while the rest learns: a general corpus of a few hundred thousand words never shows
most of the 30k tokens, and a token it never shows should still arrive at the task stage with an embedding
that agrees with the ones it did show, rather than a random one.
"""

from __future__ import annotations

import torch
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from manga_distill_assets.distill.layer_match import uniform_layer_map
from manga_distill_assets.distill.students import EAGER_ATTENTION, StudentSpec, shaped_config
from manga_distill_assets.distill.training import Stage1Result, TrainingConfig, train_stage1
from manga_distill_assets.distill.training.callbacks import Progress


def load_encoder(name_or_path: str) -> PreTrainedModel:
    """A pre-trained encoder without a head (hub id or local folder), safetensors only, eager attention."""
    model = AutoModel.from_pretrained(name_or_path, use_safetensors=True, attn_implementation=EAGER_ATTENTION)
    return model.eval()


def narrow_encoder(spec: StudentSpec, base: PreTrainedModel, seed: int) -> PreTrainedModel:
    """An encoder of `base`'s family and vocabulary at `spec`'s shape, embeddings projected from `base`'s."""
    torch.manual_seed(seed)
    student = AutoModel.from_config(shaped_config(spec, base.config), attn_implementation=EAGER_ATTENTION)
    _project_embeddings(base, student)
    return student.eval()


def distill_general(
    student: PreTrainedModel,
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    passages: list[str],
    config: TrainingConfig,
    progress: Progress | None = None,
) -> Stage1Result:
    """Stage-1 matching (uniform layer map) of `student` onto `base` over general passages; the token table
    stays fixed (see the module docstring) and is trainable again in the model that comes back."""
    matches = uniform_layer_map(student.config.num_hidden_layers, base.config.num_hidden_layers)
    word_embeddings = student.get_input_embeddings().weight
    word_embeddings.requires_grad_(False)
    try:
        return train_stage1(student, base, tokenizer, passages, matches, config, progress=progress)
    finally:
        word_embeddings.requires_grad_(True)


def _project_embeddings(base: PreTrainedModel, student: PreTrainedModel) -> None:
    """Copy every embedding table of `base` into `student`, reduced to the student's width by PCA of the
    base's word embeddings (one projection for all tables, since the embedding layer sums them)."""
    width = student.config.hidden_size
    base_tables = dict(base.base_model.embeddings.named_children())
    words = base.get_input_embeddings().weight.detach().float()
    if width > words.shape[1]:
        raise ValueError(
            f"The general student ({width} wide) is wider than its base model ({words.shape[1]}); "
            "a narrow student must have hidden_size at most the base's."
        )
    _, _, components = torch.linalg.svd(words - words.mean(dim=0), full_matrices=False)
    projection = components[:width].T
    with torch.no_grad():
        for name, module in student.base_model.embeddings.named_children():
            source = base_tables.get(name)
            if isinstance(module, torch.nn.Embedding) and isinstance(source, torch.nn.Embedding):
                module.weight.copy_(source.weight.float() @ projection)
