"""TinyBERT stage-1 loss: masking, head grouping, projections and a tiny end-to-end training run."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel
from transformers.modeling_outputs import BaseModelOutput

from manga_distill_assets.distill.intermediate import IntermediateLoss
from manga_distill_assets.distill.layer_match import LayerMatch, uniform_layer_map

TERM_KEYS = ("embeddings", "hidden", "attention")


def random_outputs(
    seed: int, *, batch: int = 2, length: int = 5, hidden: int = 8, heads: int = 2, layers: int = 2
) -> BaseModelOutput:
    generator = torch.Generator().manual_seed(seed)
    hidden_states = tuple(torch.randn(batch, length, hidden, generator=generator) for _ in range(layers + 1))
    attentions = tuple(
        torch.softmax(torch.randn(batch, heads, length, length, generator=generator), dim=-1)
        for _ in range(layers)
    )
    return BaseModelOutput(hidden_states=hidden_states, attentions=attentions)


def padded_with_garbage(
    outputs: BaseModelOutput, mask: torch.Tensor, extra: int, seed: int
) -> BaseModelOutput:
    """The same real tokens, with `extra` more padded positions and random values wherever mask is 0."""
    generator = torch.Generator().manual_seed(seed)
    batch, length = mask.shape
    padded_mask = torch.cat([mask, torch.zeros(batch, extra, dtype=mask.dtype)], dim=1)
    real_tokens = padded_mask.bool()

    def pad_state(state: torch.Tensor) -> torch.Tensor:
        garbage = 100 * torch.randn(batch, length + extra, state.shape[-1], generator=generator)
        garbage[:, :length] = torch.where(real_tokens[:, :length, None], state, garbage[:, :length])
        return garbage

    def pad_attention(attention: torch.Tensor) -> torch.Tensor:
        heads = attention.shape[1]
        garbage = 100 * torch.randn(batch, heads, length + extra, length + extra, generator=generator)
        real_pairs = real_tokens[:, None, :length, None] & real_tokens[:, None, None, :length]
        garbage[:, :, :length, :length] = torch.where(real_pairs, attention, garbage[:, :, :length, :length])
        return garbage

    return BaseModelOutput(
        hidden_states=tuple(pad_state(state) for state in outputs.hidden_states),
        attentions=tuple(pad_attention(attention) for attention in outputs.attentions),
    )


def full_mask(batch: int = 2, length: int = 5) -> torch.Tensor:
    return torch.ones(batch, length, dtype=torch.long)


def same_width_loss(matches: list[LayerMatch], **kwargs: float) -> IntermediateLoss:
    return IntermediateLoss(
        matches, student_hidden=8, teacher_hidden=8, student_heads=2, teacher_heads=2, **kwargs
    )


def test_projections_are_keyed_by_embeddings_and_student_hidden_layer() -> None:
    loss = same_width_loss(uniform_layer_map(2, 4))
    assert sorted(loss.projections.keys()) == ["embeddings", "hidden_1", "hidden_2"]
    assert sorted(loss.projections.state_dict()) == [
        "embeddings.weight",
        "hidden_1.weight",
        "hidden_2.weight",
    ]


def test_equal_widths_start_from_a_trainable_identity_projection() -> None:
    projection = same_width_loss(uniform_layer_map(2, 4)).projections["hidden_1"]
    assert torch.equal(projection.weight, torch.eye(8))
    assert projection.weight.requires_grad
    assert projection.bias is None


def test_different_widths_project_student_width_to_teacher_width() -> None:
    loss = IntermediateLoss(uniform_layer_map(2, 4), 16, 32, 2, 4)
    assert loss.projections["embeddings"].weight.shape == (32, 16)


def test_identical_states_with_identity_projection_give_zero_loss() -> None:
    outputs = random_outputs(seed=0)
    terms = same_width_loss(uniform_layer_map(2, 2))(outputs, outputs, full_mask())
    for key in ("loss", *TERM_KEYS):
        assert float(terms[key].detach()) == 0.0


def test_hidden_term_is_masked_mean_squared_error_of_projected_states() -> None:
    student, teacher = random_outputs(seed=1, hidden=4), random_outputs(seed=2, hidden=6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    loss = IntermediateLoss([LayerMatch(2, 1, "hidden")], 4, 6, 2, 2)
    weight = loss.projections["hidden_2"].weight.detach().numpy()
    s, t = student.hidden_states[2].numpy(), teacher.hidden_states[1].numpy()
    real = mask.numpy().astype(bool)
    expected = ((s[real] @ weight.T - t[real]) ** 2).sum() / (real.sum() * 6)
    terms = loss(student, teacher, mask)
    assert float(terms["hidden"].detach()) == pytest.approx(expected, rel=1e-5)
    assert float(terms["loss"].detach()) == pytest.approx(expected, rel=1e-5)


def test_teacher_heads_are_averaged_in_adjacent_groups() -> None:
    student, teacher = random_outputs(seed=3, heads=2), random_outputs(seed=4, heads=4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    loss = IntermediateLoss([LayerMatch(1, 2, "attention")], 8, 8, student_heads=2, teacher_heads=4)
    s, t = student.attentions[0].numpy(), teacher.attentions[1].numpy()
    grouped = np.stack([(t[:, 0] + t[:, 1]) / 2, (t[:, 2] + t[:, 3]) / 2], axis=1)
    real = mask.numpy().astype(bool)
    pairs = real[:, None, :, None] & real[:, None, None, :]
    pairs = np.broadcast_to(pairs, s.shape)
    expected = ((s - grouped) ** 2)[pairs].sum() / pairs.sum()
    assert float(loss(student, teacher, mask)["attention"]) == pytest.approx(expected, rel=1e-5)


def test_padded_positions_do_not_change_any_term() -> None:
    student, teacher = random_outputs(seed=5), random_outputs(seed=6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    loss = IntermediateLoss(uniform_layer_map(2, 2), 8, 8, 2, 2)
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    clean = loss(student, teacher, mask)
    padded = loss(
        padded_with_garbage(student, mask, extra=3, seed=7),
        padded_with_garbage(teacher, mask, extra=3, seed=8),
        padded_mask,
    )
    for key in ("loss", *TERM_KEYS):
        assert torch.allclose(padded[key], clean[key], rtol=1e-6, atol=0), key


def test_beta_scales_state_terms_and_gamma_scales_attention_terms() -> None:
    student, teacher = random_outputs(seed=9), random_outputs(seed=10)
    base = same_width_loss(uniform_layer_map(2, 2))(student, teacher, full_mask())
    scaled = same_width_loss(uniform_layer_map(2, 2), beta=2.5, gamma=0.5)(student, teacher, full_mask())
    assert torch.allclose(scaled["embeddings"], 2.5 * base["embeddings"])
    assert torch.allclose(scaled["hidden"], 2.5 * base["hidden"])
    assert torch.allclose(scaled["attention"], 0.5 * base["attention"])
    assert torch.allclose(scaled["loss"], scaled["embeddings"] + scaled["hidden"] + scaled["attention"])


def test_match_weight_scales_its_own_term() -> None:
    student, teacher = random_outputs(seed=11), random_outputs(seed=12)
    single = same_width_loss([LayerMatch(1, 1, "hidden")])(student, teacher, full_mask())
    weighted = same_width_loss([LayerMatch(1, 1, "hidden", weight=3.0)])(student, teacher, full_mask())
    assert torch.allclose(weighted["hidden"], 3.0 * single["hidden"])


def test_hidden_term_sums_over_its_matches() -> None:
    student, teacher = random_outputs(seed=13), random_outputs(seed=14)
    first = same_width_loss([LayerMatch(1, 1, "hidden")])(student, teacher, full_mask())
    second = same_width_loss([LayerMatch(2, 2, "hidden")])(student, teacher, full_mask())
    both = same_width_loss([LayerMatch(1, 1, "hidden"), LayerMatch(2, 2, "hidden")])(
        student, teacher, full_mask()
    )
    assert torch.allclose(both["hidden"], first["hidden"] + second["hidden"])


def test_kinds_without_matches_report_zero() -> None:
    student, teacher = random_outputs(seed=15), random_outputs(seed=16)
    terms = same_width_loss([LayerMatch(1, 1, "hidden")])(student, teacher, full_mask())
    assert float(terms["embeddings"]) == 0.0
    assert float(terms["attention"]) == 0.0
    assert float(terms["hidden"].detach()) > 0.0


def test_gradients_reach_every_projection_but_not_the_teacher() -> None:
    student, teacher = random_outputs(seed=17, hidden=4), random_outputs(seed=18, hidden=6)
    for state in teacher.hidden_states:
        state.requires_grad_(True)
    loss = IntermediateLoss(uniform_layer_map(2, 2), 4, 6, 2, 2)
    loss(student, teacher, full_mask())["loss"].backward()
    for name, projection in loss.projections.items():
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0, name
    assert all(state.grad is None for state in teacher.hidden_states)


@pytest.mark.parametrize(("student_heads", "teacher_heads"), [(3, 4), (4, 2)])
def test_head_counts_that_do_not_group_evenly_are_rejected(student_heads: int, teacher_heads: int) -> None:
    with pytest.raises(ValueError, match="must be a multiple of the student's"):
        IntermediateLoss(uniform_layer_map(2, 2), 8, 8, student_heads, teacher_heads)


def test_head_counts_do_not_matter_without_attention_matches() -> None:
    IntermediateLoss([LayerMatch(1, 1, "hidden")], 8, 8, student_heads=3, teacher_heads=4)


def test_out_of_range_match_is_rejected_at_construction_when_layer_counts_are_given() -> None:
    with pytest.raises(ValueError, match=r"teacher layer must be in 1\.\.4"):
        IntermediateLoss([LayerMatch(1, 5, "hidden")], 8, 8, 2, 2, student_layers=2, teacher_layers=4)


def test_out_of_range_match_is_rejected_against_the_models_outputs() -> None:
    loss = same_width_loss([LayerMatch(1, 3, "hidden")])
    with pytest.raises(ValueError, match=r"teacher layer must be in 1\.\.2"):
        loss(random_outputs(seed=19), random_outputs(seed=20), full_mask())


@pytest.mark.parametrize("missing", [None, ()])
def test_missing_attentions_ask_for_eager_attention(missing: tuple | None) -> None:
    teacher = random_outputs(seed=21)
    teacher = BaseModelOutput(hidden_states=teacher.hidden_states, attentions=missing)
    loss = same_width_loss(uniform_layer_map(2, 2))
    with pytest.raises(ValueError, match=r'teacher outputs have no attentions.*attn_implementation="eager"'):
        loss(random_outputs(seed=22), teacher, full_mask())


def test_missing_hidden_states_ask_for_output_hidden_states() -> None:
    student = random_outputs(seed=23)
    student = BaseModelOutput(hidden_states=None, attentions=student.attentions)
    loss = same_width_loss([LayerMatch(1, 1, "hidden")])
    with pytest.raises(ValueError, match=r"student outputs have no hidden_states.*output_hidden_states=True"):
        loss(student, random_outputs(seed=24), full_mask())


def test_states_of_the_wrong_width_are_rejected() -> None:
    loss = IntermediateLoss([LayerMatch(1, 1, "hidden")], 8, 16, 2, 2)
    with pytest.raises(
        ValueError, match=r"teacher hidden state has shape \(2, 5, 8\), expected \[2, 5, 16\]"
    ):
        loss(random_outputs(seed=25), random_outputs(seed=26), full_mask())


def test_mask_of_another_length_is_rejected() -> None:
    loss = same_width_loss([LayerMatch(1, 1, "attention")])
    with pytest.raises(ValueError, match="same token ids"):
        loss(random_outputs(seed=27), random_outputs(seed=28), full_mask(length=6))


def test_projection_state_round_trips_into_a_fresh_loss() -> None:
    trained = IntermediateLoss(uniform_layer_map(2, 4), 16, 32, 2, 4)
    fresh = IntermediateLoss(uniform_layer_map(2, 4), 16, 32, 2, 4)
    fresh.load_projection_state(trained.projection_state())
    for name, tensor in trained.projections.state_dict().items():
        assert torch.equal(fresh.projections.state_dict()[name], tensor)


def test_projection_state_is_a_detached_copy() -> None:
    loss = same_width_loss(uniform_layer_map(2, 2))
    state = loss.projection_state()
    state["hidden_1.weight"].zero_()
    assert torch.equal(loss.projections["hidden_1"].weight, torch.eye(8))


def test_projections_from_another_layer_map_are_rejected() -> None:
    saved = IntermediateLoss(uniform_layer_map(3, 6), 16, 32, 2, 4).projection_state()
    loss = IntermediateLoss(uniform_layer_map(2, 4), 16, 32, 2, 4)
    with pytest.raises(ValueError, match=r"unexpected \['hidden_3.weight'\]"):
        loss.load_projection_state(saved)


def test_projections_of_another_width_are_rejected() -> None:
    saved = IntermediateLoss(uniform_layer_map(2, 4), 16, 32, 2, 4).projection_state()
    loss = IntermediateLoss(uniform_layer_map(2, 4), 8, 32, 2, 4)
    with pytest.raises(ValueError, match=r"wrong shape \['embeddings.weight', 'hidden_1.weight'"):
        loss.load_projection_state(saved)


def tiny_bert(hidden: int, layers: int, heads: int) -> BertModel:
    config = BertConfig(
        vocab_size=100,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
    )
    return BertModel(config)


def test_tiny_bert_student_learns_from_tiny_bert_teacher() -> None:
    torch.manual_seed(0)
    teacher = tiny_bert(hidden=32, layers=4, heads=4).eval()
    student = tiny_bert(hidden=16, layers=2, heads=2)
    loss_fn = IntermediateLoss(uniform_layer_map(2, 4), 16, 32, 2, 4, student_layers=2, teacher_layers=4)
    input_ids = torch.randint(0, 100, (4, 12))
    attention_mask = torch.ones(4, 12, dtype=torch.long)
    attention_mask[1, 8:] = 0
    attention_mask[3, 5:] = 0
    with torch.no_grad():
        teacher_outputs = teacher(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            output_attentions=True,
        )
    optimizer = torch.optim.SGD([*student.parameters(), *loss_fn.parameters()], lr=0.1)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        student_outputs = student(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            output_attentions=True,
        )
        loss = loss_fn(student_outputs, teacher_outputs, attention_mask)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0]
