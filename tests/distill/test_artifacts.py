import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import PreTrainedTokenizerFast

from manga_distill_assets.distill.artifacts import (
    PROJECTIONS_FILE,
    ModelFolderError,
    check_label_map,
    label_map,
    load_model,
    load_projections,
    save_model,
)
from manga_distill_assets.distill.students import StudentSpec, from_config
from tests.distill.tiny import TINY_LABEL_NAMES, TINY_TEXTS, tiny_teacher, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    return tiny_tokenizer(tmp_path_factory.mktemp("artifacts"))


def _logits(model: nn.Module, tokenizer: PreTrainedTokenizerFast) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(list(TINY_TEXTS[:6]), padding=True, return_tensors="pt")).logits


def _projections() -> nn.ModuleDict:
    return nn.ModuleDict({"hidden": nn.Linear(16, 32), "embeddings": nn.Linear(16, 32, bias=False)})


def _student() -> nn.Module:
    spec = StudentSpec(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32)
    return from_config(spec, tiny_teacher().config, dict(enumerate(TINY_LABEL_NAMES)))


def test_teacher_round_trips_with_identical_logits_and_labels(tokenizer, tmp_path: Path) -> None:
    teacher = tiny_teacher()
    model, reloaded_tokenizer = load_model(save_model(teacher, tokenizer, tmp_path / "teacher"))
    assert torch.equal(_logits(model, reloaded_tokenizer), _logits(teacher, tokenizer))
    assert label_map(model) == dict(enumerate(TINY_LABEL_NAMES))
    assert model.config.label2id == {label: index for index, label in enumerate(TINY_LABEL_NAMES)}


def test_loaded_model_uses_eager_attention_in_eval_mode(tokenizer, tmp_path: Path) -> None:
    model, _ = load_model(save_model(tiny_teacher(), tokenizer, tmp_path / "teacher"))
    assert model.config._attn_implementation == "eager"
    assert not model.training


def test_student_round_trips_with_identical_logits(tokenizer, tmp_path: Path) -> None:
    student = _student()
    model, reloaded_tokenizer = load_model(save_model(student, tokenizer, tmp_path / "student"))
    assert torch.equal(_logits(model, reloaded_tokenizer), _logits(student, tokenizer))
    assert model.config.hidden_size == 16


def test_projections_are_saved_beside_the_student_and_reload_exactly(tokenizer, tmp_path: Path) -> None:
    projections = _projections()
    folder = save_model(_student(), tokenizer, tmp_path / "stage1", projections=projections)
    assert (folder / PROJECTIONS_FILE).is_file()
    reloaded = load_projections(folder)
    assert set(reloaded) == {"hidden.weight", "hidden.bias", "embeddings.weight"}
    for name, tensor in projections.state_dict().items():
        assert torch.equal(reloaded[name], tensor), name
    model, _ = load_model(folder)
    assert model.config.num_hidden_layers == 2


def test_a_folder_without_projections_loads_none(tokenizer, tmp_path: Path) -> None:
    assert load_projections(save_model(_student(), tokenizer, tmp_path / "student")) == {}


def test_saving_leaves_no_staging_folders_behind(tokenizer, tmp_path: Path) -> None:
    save_model(tiny_teacher(), tokenizer, tmp_path / "teacher")
    save_model(tiny_teacher(seed=1), tokenizer, tmp_path / "teacher")
    assert [path.name for path in tmp_path.iterdir()] == ["teacher"]


def test_saving_the_same_model_twice_gives_identical_files(tokenizer, tmp_path: Path) -> None:
    first = save_model(tiny_teacher(), tokenizer, tmp_path / "first")
    second = save_model(tiny_teacher(), tokenizer, tmp_path / "second")
    names = sorted(path.name for path in first.iterdir())
    assert names == sorted(path.name for path in second.iterdir())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in names)


def test_saving_the_same_content_again_keeps_the_existing_folder(tokenizer, tmp_path: Path, caplog) -> None:
    folder = save_model(tiny_teacher(), tokenizer, tmp_path / "teacher")
    marker = (folder / "config.json").stat().st_ino
    with caplog.at_level(logging.WARNING):
        save_model(tiny_teacher(), tokenizer, folder)
    assert (folder / "config.json").stat().st_ino == marker
    assert "Replaced" not in caplog.text


def test_saving_different_content_replaces_the_folder_and_says_so(tokenizer, tmp_path: Path, caplog) -> None:
    folder = save_model(tiny_teacher(), tokenizer, tmp_path / "teacher", projections=_projections())
    replacement = tiny_teacher(seed=1)
    with caplog.at_level(logging.WARNING):
        save_model(replacement, tokenizer, folder)
    model, _ = load_model(folder)
    assert torch.equal(_logits(model, tokenizer), _logits(replacement, tokenizer))
    assert not (folder / PROJECTIONS_FILE).exists()
    assert f"Replaced the model in {folder}" in caplog.text


def test_saving_refuses_to_replace_a_folder_that_is_not_a_model(tokenizer, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep me")
    with pytest.raises(ModelFolderError, match=r"notes already exists and does not hold a saved model"):
        save_model(tiny_teacher(), tokenizer, folder)
    assert (folder / "todo.txt").read_text() == "keep me"
    assert [path.name for path in tmp_path.iterdir()] == ["notes"]


def test_truncated_weights_give_an_error_naming_the_folder(tokenizer, tmp_path: Path) -> None:
    folder = save_model(tiny_teacher(), tokenizer, tmp_path / "teacher")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(
        ModelFolderError, match=r"model\.safetensors is truncated or corrupt.*Re-materialise"
    ) as error:
        load_model(folder)
    assert str(folder) in str(error.value)


def test_truncated_projections_give_the_same_clear_error(tokenizer, tmp_path: Path) -> None:
    folder = save_model(_student(), tokenizer, tmp_path / "stage1", projections=_projections())
    path = folder / PROJECTIONS_FILE
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ModelFolderError, match=r"stage1_projections\.safetensors is truncated or corrupt"):
        load_projections(folder)


def test_a_folder_without_config_is_not_a_saved_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match=r"holds no config\.json.*Re-materialise"):
        load_model(tmp_path)


def test_a_folder_without_weights_names_what_is_missing(tokenizer, tmp_path: Path) -> None:
    folder = save_model(tiny_teacher(), tokenizer, tmp_path / "teacher")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"holds no model weights"):
        load_model(folder)


def test_a_folder_without_a_tokenizer_names_what_is_missing(tokenizer, tmp_path: Path) -> None:
    folder = save_model(tiny_teacher(), tokenizer, tmp_path / "teacher")
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(ModelFolderError, match=r"holds no tokenizer_config\.json"):
        load_model(folder)


def test_a_tokenizer_larger_than_the_embeddings_is_refused(tokenizer, tmp_path: Path) -> None:
    model = tiny_teacher()
    model.resize_token_embeddings(50)
    folder = save_model(model, tokenizer, tmp_path / "teacher")
    with pytest.raises(ModelFolderError, match=r"has 195 tokens but the model has only 50 embedding rows"):
        load_model(folder)


def test_label_map_is_in_id_order() -> None:
    assert label_map(tiny_teacher()) == {0: "order_status", 1: "recommendation", 2: "return_request"}


def test_check_label_map_accepts_the_same_labels_in_order() -> None:
    check_label_map(tiny_teacher(), list(TINY_LABEL_NAMES), source="teacher_model")


def test_check_label_map_names_the_source_and_the_missing_and_extra_labels() -> None:
    expected = ["order_status", "recommendation", "cancel_order"]
    with pytest.raises(ValueError) as error:
        check_label_map(tiny_teacher(), expected, source="teacher_model")
    message = str(error.value)
    assert "teacher_model" in message
    assert "missing ['cancel_order']" in message
    assert "extra ['return_request']" in message
    assert "Retrain or re-register teacher_model" in message


def test_check_label_map_reports_misordered_labels() -> None:
    expected = ["recommendation", "order_status", "return_request"]
    with pytest.raises(
        ValueError, match="'recommendation' is id 1, expected 0; 'order_status' is id 0, expected 1"
    ):
        check_label_map(tiny_teacher(), expected, source="/models/teacher")


def test_label_maps_live_in_the_saved_config(tokenizer, tmp_path: Path) -> None:
    folder = save_model(tiny_teacher(), tokenizer, tmp_path / "teacher")
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "order_status", "1": "recommendation", "2": "return_request"}
