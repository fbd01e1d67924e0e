"""Where training keeps its checkpoints between attempts: local disk, even when models live on S3."""

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from hashlib import sha256
from pathlib import Path

import dagster as dg

import manga_distill_assets.distill as training_code

TRAINING_CODE = Path(training_code.__file__).parent
"""The training loops, losses and callbacks a checkpoint was written by (`distill/`)."""


@cache
def code_fingerprint(root: Path) -> str:
    """A digest of every Python file under `root`, by relative path and content."""
    digest = sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class TrainingWorkspace(dg.ConfigurableResource):
    """One folder per (asset, inputs, config, training code): a re-run after a crash resumes the same
    training, a run with other inputs never resumes a stranger's checkpoint, and neither does a run after an
    upgrade that changed the training loop, whose optimiser and callback state the old checkpoint may not fit.
    """

    root: str = ".artifacts/work"

    def folder(self, asset: str, *inputs: object) -> Path:
        key_parts = [code_fingerprint(TRAINING_CODE), *(str(item) for item in inputs)]
        key = sha256(json.dumps(key_parts).encode()).hexdigest()[:16]
        folder = Path(self.root) / asset / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextmanager
    def checkpoints(self, asset: str, *inputs: object) -> Iterator[Path]:
        """`folder(asset, *inputs)` for a block that trains and stores a model. A block that fails (or a
        process killed inside it) leaves the folder for the rerun to resume; one that ends has stored its
        model, and its checkpoints, each with an optimiser state twice the model's size, are deleted."""
        folder = self.folder(asset, *inputs)
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
