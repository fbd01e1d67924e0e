"""A model folder's content address and its manifest: pure hashing, no storage.

The address is a sha256 over (path, size, file sha256) lines of the folder's sorted relative paths, so it
covers every path and byte, does not depend on the OS or directory order, and a stored manifest can be checked
against a reference without reading the files again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from manga_distill_assets.resources.atomic_files import CHUNK_BYTES
from manga_distill_assets.resources.model_store.ref import check_kind

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(folder: Path) -> list[str]:
    """Relative POSIX paths, sorted, so the address does not depend on the OS or on directory order."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def entries_sha256(entries: list[ManifestEntry]) -> str:
    """Hash of (path, size, file sha256) lines: it covers every path and byte, and a manifest can be
    checked against a reference without reading the files again."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda item: item.path):
        digest.update(f"{entry.path}\0{entry.size}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def manifest_entries(folder: Path) -> list[ManifestEntry]:
    return [
        ManifestEntry(path=name, size=(folder / name).stat().st_size, sha256=_file_sha256(folder / name))
        for name in _model_files(folder)
    ]


def folder_sha256(folder: Path) -> str:
    """The content address of a model folder: sha256 over its sorted relative paths and their bytes."""
    return entries_sha256(manifest_entries(Path(folder)))


def _checked_model_folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Model folder {folder} does not exist: save the model into it (save_pretrained) first."
        )
    if not _model_files(folder):
        raise ValueError(f"Model folder {folder} is empty: save the model into it before storing it.")
    return folder


def addressed(folder: Path, kind: str) -> tuple[Path, list[ManifestEntry], str]:
    """Both stores address a folder the same way: its checked files, their manifest entries, their sha256."""
    check_kind(kind)
    source = _checked_model_folder(folder)
    entries = manifest_entries(source)
    return source, entries, entries_sha256(entries)


def manifest_json(sha256: str, kind: str, entries: list[ManifestEntry]) -> bytes:
    manifest = {
        "format": MANIFEST_FORMAT,
        "sha256": sha256,
        "kind": kind,
        "files": [asdict(entry) for entry in entries],
    }
    return json.dumps(manifest, indent=2).encode()


def parse_manifest(raw: bytes, where: str) -> tuple[str, list[ManifestEntry]]:
    try:
        manifest = json.loads(raw)
        sha256, entries = manifest["sha256"], [ManifestEntry(**entry) for entry in manifest["files"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"The model manifest {where} is unreadable ({error}); delete it and re-materialise the asset "
            "that produced this model."
        ) from error
    outside = [
        entry.path for entry in entries if Path(entry.path).is_absolute() or ".." in Path(entry.path).parts
    ]
    if outside:
        raise ValueError(f"The model manifest {where} names files outside its folder: {outside}; delete it.")
    return sha256, entries
