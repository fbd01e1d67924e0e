"""General distillation: a narrow encoder of the base's family, its embeddings projected from the base's, that
learns the base's states on general text while its token table stays put."""

import pytest
import torch

from manga_distill_assets.distill.general import distill_general, narrow_encoder
from manga_distill_assets.distill.students import StudentSpec
from manga_distill_assets.distill.training import TrainingConfig
from tests.distill.tiny import TINY_TEXTS, tiny_teacher, tiny_tokenizer


def token_distances(model) -> torch.Tensor:
    table = model.base_model.embeddings.word_embeddings.weight.detach()
    return torch.cdist(table, table, compute_mode="donot_use_mm_for_euclid_dist")


def test_the_narrow_encoder_has_the_spec_shape_and_the_base_vocabulary():
    base = tiny_teacher(hidden=32, heads=4)
    student = narrow_encoder(
        StudentSpec(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=40), base, 0
    )
    assert (student.config.num_hidden_layers, student.config.hidden_size) == (2, 16)
    assert student.config.num_attention_heads == 2
    assert student.config.intermediate_size == 40
    assert student.config.vocab_size == base.config.vocab_size


def test_at_the_base_width_the_projection_keeps_every_distance_between_tokens():
    base = tiny_teacher(hidden=32, heads=4)
    student = narrow_encoder(
        StudentSpec(num_layers=1, hidden_size=32, num_heads=4, intermediate_size=64), base, 0
    )
    assert torch.allclose(token_distances(student), token_distances(base), atol=1e-4)


def test_a_narrower_projection_never_stretches_a_distance():
    base = tiny_teacher(hidden=32, heads=4)
    student = narrow_encoder(
        StudentSpec(num_layers=1, hidden_size=8, num_heads=2, intermediate_size=16), base, 0
    )
    assert (token_distances(student) <= token_distances(base) + 1e-4).all()
    assert token_distances(student).mean() > 0.5 * token_distances(base).mean()


def test_a_student_wider_than_its_base_is_refused():
    base = tiny_teacher(hidden=32, heads=4)
    with pytest.raises(ValueError, match="wider than its base"):
        narrow_encoder(StudentSpec(num_layers=1, hidden_size=64, num_heads=4, intermediate_size=64), base, 0)


def test_general_distillation_lowers_the_matching_loss_and_leaves_the_token_table_trainable(tmp_path):
    base = tiny_teacher(hidden=32, heads=4)
    tokenizer = tiny_tokenizer(tmp_path)
    student = narrow_encoder(
        StudentSpec(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32), base, 0
    )
    table = student.get_input_embeddings().weight.detach().clone()
    config = TrainingConfig(
        output_dir=tmp_path / "run",
        epochs=30,
        learning_rate=3e-3,
        batch_size=10,
        checkpoint_every=0,
        log_every=3,
    )
    result = distill_general(student, base, tokenizer, list(TINY_TEXTS), config)
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(student.get_input_embeddings().weight, table)
    assert student.get_input_embeddings().weight.requires_grad
