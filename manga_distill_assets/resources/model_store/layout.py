"""The on-disk layout shared by the local store and the S3 store's download cache.

Publishing renames a fully written temporary sibling into place and only then writes the manifest, so a crash
at any point leaves either the complete model or something ``problem`` reports.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from manga_distill_assets.resources.atomic_files import copy_hashing, write_atomically
from manga_distill_assets.resources.model_store.manifest import (
    MANIFEST_SUFFIX,
    ManifestEntry,
    manifest_json,
    parse_manifest,
)


class AddressedFolders:
    """``<root>/<kind>/<sha256[:16]>/`` folders with their manifests beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, kind: str, sha256: str) -> Path:
        return self.root / kind / sha256[:16]

    def manifest_path(self, kind: str, sha256: str) -> Path:
        return self.root / kind / f"{sha256[:16]}{MANIFEST_SUFFIX}"

    def problem(self, kind: str, sha256: str) -> str | None:
        """Why the stored copy is unusable, or None when it is complete. Checks sizes only: cheap."""
        manifest_path = self.manifest_path(kind, sha256)
        folder = self.folder(kind, sha256)
        if not manifest_path.is_file() or not folder.is_dir():
            return f"{folder} is missing or was never completely written"
        try:
            stored_sha, entries = parse_manifest(manifest_path.read_bytes(), str(manifest_path))
        except ValueError as error:
            return str(error)
        if stored_sha != sha256:
            return f"{folder} holds a different model (sha256 {stored_sha})"
        for entry in entries:
            path = folder / entry.path
            if not path.is_file() or path.stat().st_size != entry.size:
                return f"{path} is missing or not {entry.size} bytes as its manifest says"
        return None

    def staging_folder(self, kind: str, sha256: str) -> Path:
        parent = self.root / kind
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=parent, prefix=f".{sha256[:16]}.", suffix=".tmp"))

    def publish(self, staging: Path, kind: str, sha256: str, entries: list[ManifestEntry]) -> Path:
        folder = self.folder(kind, sha256)
        if self.problem(kind, sha256) is None:
            return folder  # a concurrent put of the same content finished first; keep its copy
        manifest_path = self.manifest_path(kind, sha256)
        manifest_path.unlink(missing_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():
                raise
            shutil.rmtree(staging)  # a concurrent put of the same content renamed its copy first
        write_atomically(manifest_path, manifest_json(sha256, kind, entries))
        return folder


def stage_from_folder(source: Path, staging: Path, entries: list[ManifestEntry]) -> None:
    """Copy a model folder into a staging folder, refusing it when a file changed since it was hashed."""
    for entry in entries:
        with (source / entry.path).open("rb") as stream:
            size, sha256 = copy_hashing(stream, staging / entry.path)
        if (size, sha256) != (entry.size, entry.sha256):
            raise RuntimeError(
                f"{source / entry.path} changed while the model was being stored; store it again once "
                "whatever writes to that folder has finished."
            )
