"""Three ways to make a student classifier: a smaller config, a subset of the teacher's layers, a checkpoint.

Every model is built with eager attention, because stage-1 distillation matches attention maps and
transformers returns attentions only from the eager implementation. Builders return models in eval mode, as
`from_pretrained` does; training loops switch to train mode themselves.
"""

import copy
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel

EAGER_ATTENTION = "eager"

# Encoder layer weights: `encoder.layer.N.` in BERT-like models, `transformer.layer.N.` in DistilBERT.
_LAYER_KEY = re.compile(r"^(?P<head>(?:.*\.)?(?:encoder|transformer)\.layer\.)(?P<index>\d+)(?P<tail>\..+)$")
# Configs name the feed-forward width differently: BERT-like `intermediate_size`, DistilBERT `hidden_dim`.
_INTERMEDIATE_ATTRIBUTES = ("intermediate_size", "hidden_dim")


@dataclass(frozen=True)
class StudentSpec:
    """The shape of a student built from scratch.

    The defaults keep 4 of MiniLM-L6's 6 layers at half its width (384 -> 192) with a 4x feed-forward.
    Six heads of 32 dimensions keep the teacher's per-head width, so stage-1 attention transfer averages the
    teacher's 12 heads in groups of 2 onto the student's 6. Per token the encoder then costs about a sixth of
    the teacher's multiply-adds (2/3 of the layers at 1/4 of the per-layer cost), which is what keeps the
    student's p50 latency well under half the teacher's.
    """

    num_layers: int = 4
    hidden_size: int = 192
    num_heads: int = 6
    intermediate_size: int = 768

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"StudentSpec.{name} must be at least 1, got {getattr(self, name)}.")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"StudentSpec.hidden_size ({self.hidden_size}) must be divisible by num_heads "
                f"({self.num_heads}) so every attention head gets the same width; change one of them "
                "(e.g. hidden_size=192 with num_heads=6)."
            )


def from_config(
    spec: StudentSpec, teacher_config: PretrainedConfig, id2label: dict[int, str]
) -> PreTrainedModel:
    """A randomly initialised student in `spec`'s shape, of the teacher's family, vocabulary and positions.

    Keeping the teacher's vocabulary, position and token-type tables lets the student share the teacher's
    tokenizer, so the transfer texts are tokenised once for both.
    """
    config = shaped_config(spec, teacher_config)
    _set_labels(config, id2label)
    student = AutoModelForSequenceClassification.from_config(config, attn_implementation=EAGER_ATTENTION)
    return student.eval()


def shaped_config(spec: StudentSpec, config: PretrainedConfig) -> PretrainedConfig:
    """A copy of `config` (its family, vocabulary, positions) at `spec`'s depth, width and heads."""
    config = copy.deepcopy(config)
    config.num_hidden_layers = spec.num_layers
    config.hidden_size = spec.hidden_size
    config.num_attention_heads = spec.num_heads
    setattr(config, _intermediate_attribute(config), spec.intermediate_size)
    return config


def from_teacher(teacher: PreTrainedModel, layers: Sequence[int]) -> PreTrainedModel:
    """A DistilBERT-style student: the teacher's width, embeddings, pooler, classifier and some of its layers.

    `layers` are 0-based indices into the teacher's encoder layers; student layer i starts as teacher layer
    `layers[i]`.
    """
    _check_layer_choice(layers, teacher.config.num_hidden_layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = type(teacher)._from_config(config, attn_implementation=EAGER_ATTENTION)
    student.load_state_dict(_select_layers(teacher.state_dict(), layers, type(teacher).__name__))
    return student.eval()


def from_pretrained(name_or_path: str, id2label: dict[int, str], *, seed: int) -> PreTrainedModel:
    """Any BERT-family checkpoint (hub id or local folder) with a new classification head sized to `id2label`.

    The new head (and a pooler the checkpoint lacks) is drawn from torch's global generator, which nothing
    else seeds before training starts: unseeded, two runs of the same config started from different heads
    and ended up to 6 points of NDCG@3 apart (the reranker teacher). Only safetensors weights are read, so
    loading a checkpoint never unpickles code from it.
    """
    torch.manual_seed(seed)
    student = AutoModelForSequenceClassification.from_pretrained(
        name_or_path,
        id2label=dict(id2label),
        label2id={label: index for index, label in id2label.items()},
        ignore_mismatched_sizes=True,
        use_safetensors=True,
        attn_implementation=EAGER_ATTENTION,
    )
    return student.eval()


StudentInit = Literal["config", "teacher", "pretrained"]


def build_student(
    init: StudentInit,
    source: PreTrainedModel,
    id2label: dict[int, str],
    seed: int,
    *,
    layers: Sequence[int] = (2, 5),
    spec: StudentSpec | None = None,
    pretrained: str = "",
) -> PreTrainedModel:
    """A student built from `source` (the fine-tuned teacher, or the pre-trained base model for a baseline
    that owes the teacher nothing): its `layers` (`teacher`), its family at `spec`'s shape (`config`, random
    weights) or the `pretrained` checkpoint. The same arguments and seed always give the same weights, so
    stage 1 and the baseline start alike."""
    torch.manual_seed(seed)
    if init == "config":
        return from_config(spec or StudentSpec(), source.config, id2label)
    if init == "teacher":
        return from_teacher(source, layers)
    if init == "pretrained":
        return from_pretrained(pretrained, id2label, seed=seed)
    raise ValueError(f"Unknown student init {init!r}: use config, teacher or pretrained.")


def freeze_encoder(model: PreTrainedModel) -> None:
    """Everything under the base model (embeddings, layers, pooler) stops learning; the head does not."""
    prefix = f"{model.base_model_prefix}."
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not name.startswith(prefix))


def count_parameters(model: nn.Module) -> int:
    """Parameters the model trains, with tied weights counted once."""
    return sum(parameter.numel() for parameter in model.parameters())


def model_size_bytes(model: nn.Module) -> int:
    """Bytes a saved checkpoint holds: parameters and persistent buffers at their dtype, tied tensors once."""
    unique: dict[int, torch.Tensor] = {}
    for tensor in model.state_dict().values():
        unique.setdefault(tensor.data_ptr(), tensor)
    return sum(tensor.numel() * tensor.element_size() for tensor in unique.values())


def _intermediate_attribute(config: PretrainedConfig) -> str:
    for name in _INTERMEDIATE_ATTRIBUTES:
        if hasattr(config, name):
            return name
    raise ValueError(
        f"Cannot size the feed-forward layer of a '{config.model_type}' model: its config has none of "
        f"{_INTERMEDIATE_ATTRIBUTES}. Use a BERT-family teacher, or build the student with from_pretrained."
    )


def _set_labels(config: PretrainedConfig, id2label: dict[int, str]) -> None:
    config.id2label = {int(index): label for index, label in id2label.items()}
    config.label2id = {label: index for index, label in config.id2label.items()}


def _check_layer_choice(layers: Sequence[int], teacher_layers: int) -> None:
    if not layers:
        raise ValueError("Choose at least one teacher layer for the student, e.g. layers=[1, 3, 5].")
    out_of_range = [index for index in layers if not 0 <= index < teacher_layers]
    if out_of_range:
        raise ValueError(
            f"Teacher layers {out_of_range} do not exist: the teacher has {teacher_layers} layers, "
            f"numbered 0 to {teacher_layers - 1}."
        )
    if any(later <= earlier for earlier, later in itertools.pairwise(layers)):
        raise ValueError(
            f"Teacher layers {list(layers)} must be strictly increasing, so the student keeps the teacher's "
            "order of computation; list each layer once, lowest first."
        )


def _select_layers(
    teacher_state: dict[str, torch.Tensor], layers: Sequence[int], teacher_class: str
) -> dict[str, torch.Tensor]:
    """The teacher's state dict with only the chosen encoder layers, renumbered 0..len(layers)-1."""
    student_index = {teacher_index: index for index, teacher_index in enumerate(layers)}
    selected: dict[str, torch.Tensor] = {}
    found_layers = False
    for key, tensor in teacher_state.items():
        match = _LAYER_KEY.match(key)
        if match is None:
            selected[key] = tensor
            continue
        found_layers = True
        teacher_index = int(match["index"])
        if teacher_index in student_index:
            selected[f"{match['head']}{student_index[teacher_index]}{match['tail']}"] = tensor
    if not found_layers:
        raise ValueError(
            f"{teacher_class} has no 'encoder.layer.N.' or 'transformer.layer.N.' weights, so its layers "
            "cannot be copied; use a BERT-like or DistilBERT teacher, or build the student with from_config."
        )
    return selected
