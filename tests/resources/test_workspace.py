from pathlib import Path

import pytest

from manga_distill_assets.resources import workspace
from manga_distill_assets.resources.workspace import TrainingWorkspace, code_fingerprint


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_same_asset_and_inputs_resume_the_same_folder(tmp_path) -> None:
    resource = TrainingWorkspace(root=str(tmp_path))
    first = resource.folder("teacher_model", "data-digest", '{"epochs": 3}')
    assert first.is_dir()
    assert resource.folder("teacher_model", "data-digest", '{"epochs": 3}') == first
    assert resource.folder("teacher_model", "data-digest", '{"epochs": 4}') != first
    other_asset = resource.folder("baseline_student", "data-digest", '{"epochs": 3}')
    assert other_asset.parent.name == "baseline_student"


def test_changed_training_code_never_resumes_an_old_checkpoint(tmp_path, monkeypatch) -> None:
    code = _write(tmp_path / "v1", {"loop.py": "steps = 1\n", "training/callbacks.py": "patience = 2\n"})
    monkeypatch.setattr(workspace, "TRAINING_CODE", code)
    resource = TrainingWorkspace(root=str(tmp_path / "work"))
    before = resource.folder("teacher_model", "data-digest")
    upgraded = _write(tmp_path / "v2", {"loop.py": "steps = 1\n", "training/callbacks.py": "patience = 1\n"})
    monkeypatch.setattr(workspace, "TRAINING_CODE", upgraded)
    assert resource.folder("teacher_model", "data-digest") != before


@pytest.mark.parametrize(
    "change",
    [{"loop.py": "steps = 2\n"}, {"new.py": ""}, {"sub/loop.py": "steps = 1\n"}],
    ids=["content", "new file", "moved file"],
)
def test_the_fingerprint_follows_content_and_paths(tmp_path, change) -> None:
    original = _write(tmp_path / "a", {"loop.py": "steps = 1\n"})
    files = {"loop.py": "steps = 1\n", **change}
    if "sub/loop.py" in change:
        del files["loop.py"]
    assert code_fingerprint(_write(tmp_path / "b", files)) != code_fingerprint(original)
    assert code_fingerprint(_write(tmp_path / "c", {"loop.py": "steps = 1\n"})) == code_fingerprint(original)


def test_a_block_that_ends_deletes_its_checkpoints(tmp_path) -> None:
    resource = TrainingWorkspace(root=str(tmp_path))
    with resource.checkpoints("teacher_model", "data-digest") as folder:
        (folder / "checkpoint-5").mkdir()
    assert not folder.exists()


def test_a_block_that_fails_keeps_its_checkpoints_for_the_rerun(tmp_path) -> None:
    resource = TrainingWorkspace(root=str(tmp_path))
    with pytest.raises(OSError), resource.checkpoints("teacher_model", "data-digest") as folder:
        (folder / "checkpoint-5").mkdir()
        raise OSError("No space left on device while storing the teacher")
    with resource.checkpoints("teacher_model", "data-digest") as again:
        assert (again / "checkpoint-5").is_dir()
