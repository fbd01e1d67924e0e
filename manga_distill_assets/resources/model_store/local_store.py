"""The local model store: a put copies into a staging sibling and renames it into place (see `layout`)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from manga_distill_assets.resources.model_store.base import (
    ModelStore,
    as_ref,
    make_ref,
    missing_model_message,
)
from manga_distill_assets.resources.model_store.layout import AddressedFolders, stage_from_folder
from manga_distill_assets.resources.model_store.manifest import addressed
from manga_distill_assets.resources.model_store.ref import ModelRef


class LocalModelStore(ModelStore):
    """Models on local disk: the default, for a laptop or a single machine."""

    root: str = ".artifacts/models"

    def _folders(self) -> AddressedFolders:
        return AddressedFolders(Path(self.root))

    def put(
        self,
        folder: Path,
        kind: str,
        label_map: Mapping[Any, str],
        metrics: Mapping[str, float],
    ) -> ModelRef:
        source, entries, sha256 = addressed(folder, kind)
        folders = self._folders()
        if folders.problem(kind, sha256) is not None:
            staging = folders.staging_folder(kind, sha256)
            try:
                stage_from_folder(source, staging, entries)
                folders.publish(staging, kind, sha256, entries)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        uri = folders.folder(kind, sha256).resolve().as_uri()
        return make_ref(uri, sha256, kind, label_map, metrics)

    def get(self, ref: ModelRef | Mapping[str, Any]) -> Path:
        model_ref = as_ref(ref)
        folders = self._folders()
        problem = folders.problem(model_ref.kind, model_ref.sha256)
        if problem is not None:
            raise FileNotFoundError(missing_model_message(model_ref, f"in the local store, {problem}"))
        return folders.folder(model_ref.kind, model_ref.sha256)
