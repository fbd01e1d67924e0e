import json
import struct

import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from manga_distill_assets.distill.students import (
    StudentSpec,
    count_parameters,
    from_config,
    from_pretrained,
    from_teacher,
    model_size_bytes,
)
from tests.distill.tiny import TINY_LABEL_NAMES, TINY_VOCAB, tiny_teacher

ID2LABEL = dict(enumerate(TINY_LABEL_NAMES))
SMALL_SPEC = StudentSpec(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=24)


def _input_ids() -> torch.Tensor:
    return torch.tensor([[2, 10, 11, 12, 13, 3], [2, 20, 21, 3, 0, 0]])


def _attention_mask() -> torch.Tensor:
    return torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=_input_ids(), attention_mask=_attention_mask()).logits


def test_default_spec_halves_minilm_width_and_keeps_its_head_width() -> None:
    spec = StudentSpec()
    assert (spec.num_layers, spec.hidden_size, spec.num_heads, spec.intermediate_size) == (4, 192, 6, 768)
    assert spec.hidden_size // spec.num_heads == 384 // 12


def test_spec_rejects_a_width_that_heads_do_not_divide() -> None:
    with pytest.raises(ValueError, match=r"hidden_size \(100\) must be divisible by num_heads \(6\)"):
        StudentSpec(hidden_size=100, num_heads=6)


def test_spec_rejects_zero_layers() -> None:
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        StudentSpec(num_layers=0)


def test_from_config_takes_the_spec_shape_and_keeps_teacher_vocabulary_and_positions() -> None:
    teacher = tiny_teacher()
    student = from_config(SMALL_SPEC, teacher.config, ID2LABEL)
    config = student.config
    assert type(student) is type(teacher)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (2, 16, 2)
    assert config.intermediate_size == 24
    assert config.vocab_size == len(TINY_VOCAB)
    assert config.max_position_embeddings == teacher.config.max_position_embeddings
    assert config.type_vocab_size == teacher.config.type_vocab_size
    assert len(student.bert.encoder.layer) == 2


def test_from_config_sets_both_label_maps() -> None:
    student = from_config(SMALL_SPEC, tiny_teacher().config, {0: "x", 1: "y"})
    assert student.config.id2label == {0: "x", 1: "y"}
    assert student.config.label2id == {"x": 0, "y": 1}
    assert _logits(student).shape == (2, 2)


def test_from_config_uses_eager_attention_so_attentions_come_back() -> None:
    student = from_config(SMALL_SPEC, tiny_teacher().config, ID2LABEL)
    outputs = student(input_ids=_input_ids(), output_attentions=True)
    assert student.config._attn_implementation == "eager"
    assert [attention.shape for attention in outputs.attentions] == [(2, 2, 6, 6)] * 2


def test_from_config_leaves_the_teacher_config_untouched() -> None:
    teacher = tiny_teacher()
    from_config(SMALL_SPEC, teacher.config, {0: "x", 1: "y"})
    assert (teacher.config.hidden_size, teacher.config.num_labels) == (32, 3)


def test_from_config_sizes_a_distilbert_feed_forward() -> None:
    teacher_config = DistilBertConfig(vocab_size=50, dim=32, n_layers=3, n_heads=4, hidden_dim=64)
    student = from_config(SMALL_SPEC, teacher_config, ID2LABEL)
    assert (student.config.n_layers, student.config.dim, student.config.hidden_dim) == (2, 16, 24)


def test_from_teacher_with_every_layer_reproduces_the_teacher() -> None:
    teacher = tiny_teacher()
    student = from_teacher(teacher, [0, 1, 2, 3])
    torch.testing.assert_close(_logits(student), _logits(teacher), rtol=0, atol=0)


def test_from_teacher_copies_the_chosen_layers_in_order() -> None:
    teacher = tiny_teacher()
    student = from_teacher(teacher, [1, 3])
    assert len(student.bert.encoder.layer) == 2
    for student_layer, teacher_layer in zip(student.bert.encoder.layer, [1, 3], strict=True):
        expected = teacher.bert.encoder.layer[teacher_layer].state_dict()
        for name, tensor in student_layer.state_dict().items():
            assert torch.equal(tensor, expected[name]), name


def test_from_teacher_copies_embeddings_pooler_and_classifier() -> None:
    teacher = tiny_teacher()
    student = from_teacher(teacher, [0, 2])
    for part in ("bert.embeddings", "bert.pooler", "classifier"):
        student_part = student.get_submodule(part).state_dict()
        for name, tensor in teacher.get_submodule(part).state_dict().items():
            assert torch.equal(student_part[name], tensor), f"{part}.{name}"


def test_from_teacher_does_not_share_storage_with_the_teacher() -> None:
    teacher = tiny_teacher()
    student = from_teacher(teacher, [0, 1])
    with torch.no_grad():
        student.classifier.weight.zero_()
    assert teacher.classifier.weight.abs().sum() > 0


def test_from_teacher_works_for_distilbert() -> None:
    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=3, n_heads=2, hidden_dim=32, id2label=ID2LABEL)
    teacher = DistilBertForSequenceClassification._from_config(config, attn_implementation="eager").eval()
    everything = from_teacher(teacher, [0, 1, 2])
    subset = from_teacher(teacher, [0, 2])
    torch.testing.assert_close(_logits(everything), _logits(teacher), rtol=0, atol=0)
    assert torch.equal(
        subset.distilbert.transformer.layer[1].ffn.lin1.weight,
        teacher.distilbert.transformer.layer[2].ffn.lin1.weight,
    )
    assert subset.config.n_layers == 2


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([], "at least one teacher layer"),
        ([0, 4], r"Teacher layers \[4\] do not exist: the teacher has 4 layers"),
        ([-1, 2], r"Teacher layers \[-1\] do not exist"),
        ([2, 1], "strictly increasing"),
        ([1, 1], "strictly increasing"),
    ],
)
def test_from_teacher_rejects_a_bad_layer_choice(layers: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_teacher(tiny_teacher(), layers)


def test_from_pretrained_loads_the_encoder_and_sizes_a_new_head(tmp_path) -> None:
    saved = tiny_teacher(num_labels=5)
    saved.save_pretrained(tmp_path / "checkpoint")
    student = from_pretrained(str(tmp_path / "checkpoint"), ID2LABEL, seed=0)
    assert student.classifier.out_features == 3
    assert student.config.id2label == ID2LABEL
    assert student.config.label2id == {label: index for index, label in ID2LABEL.items()}
    assert student.config._attn_implementation == "eager"
    assert torch.equal(
        student.bert.encoder.layer[2].output.dense.weight, saved.bert.encoder.layer[2].output.dense.weight
    )


def test_from_pretrained_draws_the_new_head_from_its_seed_alone(tmp_path) -> None:
    tiny_teacher(num_labels=5).save_pretrained(tmp_path)
    first = from_pretrained(str(tmp_path), ID2LABEL, seed=3).classifier.weight
    torch.rand(7)  # whatever ran before must not matter
    again = from_pretrained(str(tmp_path), ID2LABEL, seed=3).classifier.weight
    other = from_pretrained(str(tmp_path), ID2LABEL, seed=4).classifier.weight
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_from_pretrained_refuses_pickled_weights(tmp_path) -> None:
    saved = tiny_teacher()
    saved.config.save_pretrained(tmp_path)
    torch.save(saved.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        from_pretrained(str(tmp_path), ID2LABEL, seed=0)


def test_count_parameters_matches_a_hand_count() -> None:
    linear = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2, bias=False))
    assert count_parameters(linear) == 3 * 4 + 4 + 4 * 2


def test_model_size_bytes_matches_the_tensor_bytes_in_a_saved_checkpoint(tmp_path) -> None:
    model = tiny_teacher()
    model.save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    stored = sum(
        end - start
        for name, entry in header.items()
        if name != "__metadata__"
        for start, end in [entry["data_offsets"]]
    )
    assert model_size_bytes(model) == stored


def test_model_size_bytes_counts_dtype_width() -> None:
    model = torch.nn.Linear(10, 10)
    assert model_size_bytes(model) == 110 * 4
    assert model_size_bytes(model.half()) == 110 * 2
