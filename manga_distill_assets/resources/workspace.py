"""Where training keeps its checkpoints between attempts: local disk, even when models live on S3."""

import json
from hashlib import sha256
from pathlib import Path

import dagster as dg


class TrainingWorkspace(dg.ConfigurableResource):
    """One folder per (asset, inputs, config): a re-run after a crash resumes the same training, and a run
    with other inputs never resumes a stranger's checkpoint."""

    root: str = ".artifacts/work"

    def folder(self, asset: str, *inputs: object) -> Path:
        key = sha256(json.dumps([str(item) for item in inputs]).encode()).hexdigest()[:16]
        folder = Path(self.root) / asset / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder
