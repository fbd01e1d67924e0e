"""Where trained models live: a content-addressed store, on local disk or on S3.

Assets never pass torch modules to each other. They save a model with ``save_pretrained`` into a folder,
``put`` it here, and pass the small JSON-able :class:`ModelRef` downstream; a downstream asset calls ``get``
to have the folder on local disk again.

A model's address is :func:`folder_sha256` of its folder, so storing the same files twice is a no-op, and a
reference can never silently point at different weights. Both stores use one layout::

    <root>/<kind>/<sha256[:16]>/...                the model's files, exactly as they were put
    <root>/<kind>/<sha256[:16]>.manifest.json      every file's path, size and sha256, written last

The manifest sits beside the folder, not in it, so the folder holds only the model's own files and
``folder_sha256(store.get(ref)) == ref.sha256``. A folder without its manifest is incomplete and never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import ClientError
from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
_CHUNK_BYTES = 1 << 20
_REQUIRED_REF_FIELDS = ("uri", "sha256", "kind")
# A kind becomes a folder name and a key segment, so it must not be able to climb out of the store.
_KIND_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")

# The permission each S3 call needs, so that an access-denied error can say what to grant.
_S3_PERMISSION = {
    "head_object": "s3:GetObject",
    "get_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject",
}


_REJECTED_CREDENTIALS_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)


class S3StorageError(RuntimeError):
    """An S3 call failed; the message names the bucket, key and what to do, never the credentials."""


@dataclass(frozen=True)
class ModelRef:
    """What an asset hands downstream instead of a model: where it is, what it is, how good it was."""

    uri: str
    sha256: str
    kind: str
    label_map: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        if not _SHA256_PATTERN.fullmatch(self.sha256):
            raise ValueError(f"Model reference {self.uri} has sha256 {self.sha256!r}, not 64 hex digits.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def require_labels(self, labels: Sequence[str], used_by: str) -> None:
        """Refuse a model whose class ids mean other labels than the labelled set's: a stale teacher with
        renamed or reordered labels would otherwise train and score every class under the wrong name."""
        model_labels = [self.label_map[key] for key in sorted(self.label_map, key=int)]
        if model_labels == list(labels):
            return
        raise ValueError(
            f"{used_by} cannot use the {self.kind} model {self.sha256[:16]} ({self.uri}): it predicts "
            f"{model_labels} in that order, but the labelled set has {list(labels)}. Re-materialise the "
            f"{self.kind} model on the current labelled set, then {used_by}."
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRef:
        missing = [name for name in _REQUIRED_REF_FIELDS if name not in data]
        if missing:
            raise ValueError(
                f"Not a model reference: {dict(data)!r} lacks {', '.join(missing)}. "
                "Pass the value returned by ModelStore.put (or its to_dict())."
            )
        return cls(
            uri=str(data["uri"]),
            sha256=str(data["sha256"]),
            kind=str(data["kind"]),
            label_map={str(key): str(label) for key, label in data.get("label_map", {}).items()},
            metrics={str(name): float(value) for name, value in data.get("metrics", {}).items()},
        )


def _check_kind(kind: str) -> None:
    if not _KIND_PATTERN.fullmatch(kind):
        raise ValueError(
            f"Model kind {kind!r} is not a plain name: use letters, digits, '_', '-' or '.', "
            "e.g. 'teacher' or 'student_stage1'."
        )


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(folder: Path) -> list[str]:
    """Relative POSIX paths, sorted, so the address does not depend on the OS or on directory order."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def _entries_sha256(entries: list[ManifestEntry]) -> str:
    """Hash of (path, size, file sha256) lines: it covers every path and byte, and a manifest can be
    checked against a reference without reading the files again."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda item: item.path):
        digest.update(f"{entry.path}\0{entry.size}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def _manifest_entries(folder: Path) -> list[ManifestEntry]:
    return [
        ManifestEntry(path=name, size=(folder / name).stat().st_size, sha256=_file_sha256(folder / name))
        for name in _model_files(folder)
    ]


def folder_sha256(folder: Path) -> str:
    """The content address of a model folder: sha256 over its sorted relative paths and their bytes."""
    return _entries_sha256(_manifest_entries(Path(folder)))


def _checked_model_folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Model folder {folder} does not exist: save the model into it (save_pretrained) first."
        )
    if not _model_files(folder):
        raise ValueError(f"Model folder {folder} is empty: save the model into it before storing it.")
    return folder


def _manifest_json(sha256: str, kind: str, entries: list[ManifestEntry]) -> bytes:
    manifest = {
        "format": MANIFEST_FORMAT,
        "sha256": sha256,
        "kind": kind,
        "files": [asdict(entry) for entry in entries],
    }
    return json.dumps(manifest, indent=2).encode()


def _parse_manifest(raw: bytes, where: str) -> tuple[str, list[ManifestEntry]]:
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


def _addressed(folder: Path, kind: str) -> tuple[Path, list, str]:
    """Both stores address a folder the same way: its checked files, their manifest entries, their sha256."""
    _check_kind(kind)
    source = _checked_model_folder(folder)
    entries = _manifest_entries(source)
    return source, entries, _entries_sha256(entries)


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file beside `path`, fsync, rename: readers see the old bytes or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _copy_hashing(source: BinaryIO, target: Path) -> tuple[int, str]:
    """Copy a stream to a file, fsync it, and return what was actually written (size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in iter(lambda: source.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


class _AddressedFolders:
    """The on-disk layout shared by the local store and the S3 store's cache.

    Publishing renames a fully written temporary sibling into place and only then writes the manifest, so a
    crash at any point leaves either the complete model or something ``problem`` reports.
    """

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
            stored_sha, entries = _parse_manifest(manifest_path.read_bytes(), str(manifest_path))
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
        write_atomically(manifest_path, _manifest_json(sha256, kind, entries))
        return folder


def _stage_from_folder(source: Path, staging: Path, entries: list[ManifestEntry]) -> None:
    for entry in entries:
        with (source / entry.path).open("rb") as stream:
            size, sha256 = _copy_hashing(stream, staging / entry.path)
        if (size, sha256) != (entry.size, entry.sha256):
            raise RuntimeError(
                f"{source / entry.path} changed while the model was being stored; store it again once "
                "whatever writes to that folder has finished."
            )


def _missing_model_message(ref: ModelRef, problem: str) -> str:
    return (
        f"The {ref.kind} model {ref.sha256[:16]} ({ref.uri}) is not available: {problem}. "
        f"Re-materialise the asset that produced this {ref.kind} model."
    )


def _as_ref(ref: ModelRef | Mapping[str, Any]) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else ModelRef.from_dict(ref)


def _make_ref(
    uri: str, sha256: str, kind: str, label_map: Mapping[Any, str], metrics: Mapping[str, float]
) -> ModelRef:
    return ModelRef.from_dict(
        {"uri": uri, "sha256": sha256, "kind": kind, "label_map": label_map, "metrics": metrics}
    )


class ModelStore(ConfigurableResource):
    """Keeps model folders by content; see the module docstring for the layout and guarantees."""

    @abstractmethod
    def put(
        self,
        folder: Path,
        kind: str,
        label_map: Mapping[Any, str],
        metrics: Mapping[str, float],
    ) -> ModelRef:
        """Store the files under ``folder`` (a no-op when they are already stored) and return their ref."""

    @abstractmethod
    def get(self, ref: ModelRef | Mapping[str, Any]) -> Path:
        """A local folder holding exactly the files that were put under this ref."""


class LocalModelStore(ModelStore):
    """Models on local disk: the default, for a laptop or a single machine."""

    root: str = ".artifacts/models"

    def _folders(self) -> _AddressedFolders:
        return _AddressedFolders(Path(self.root))

    def put(
        self,
        folder: Path,
        kind: str,
        label_map: Mapping[Any, str],
        metrics: Mapping[str, float],
    ) -> ModelRef:
        source, entries, sha256 = _addressed(folder, kind)
        folders = self._folders()
        if folders.problem(kind, sha256) is not None:
            staging = folders.staging_folder(kind, sha256)
            try:
                _stage_from_folder(source, staging, entries)
                folders.publish(staging, kind, sha256, entries)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        uri = folders.folder(kind, sha256).resolve().as_uri()
        return _make_ref(uri, sha256, kind, label_map, metrics)

    def get(self, ref: ModelRef | Mapping[str, Any]) -> Path:
        model_ref = _as_ref(ref)
        folders = self._folders()
        problem = folders.problem(model_ref.kind, model_ref.sha256)
        if problem is not None:
            raise FileNotFoundError(_missing_model_message(model_ref, f"in the local store, {problem}"))
        return folders.folder(model_ref.kind, model_ref.sha256)


def s3_error_message(error: ClientError, operation: str, bucket: str, key: str) -> str:
    """A user-facing explanation of a failed S3 call that names the bucket, key and missing permission
    (never the credentials)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    location = f"s3://{bucket}/{key}"
    if code == "NoSuchBucket":
        return (
            f"The S3 bucket '{bucket}' does not exist (while reaching {location}): create it, or configure "
            "a bucket that does (MANGA_S3_BUCKET in production; check AWS_ENDPOINT_URL_S3 and AWS_REGION)."
        )
    if code in _REJECTED_CREDENTIALS_CODES:
        return (
            f"The AWS credentials were rejected by S3 reaching {location} ({code}): refresh or replace "
            "them (environment, profile or instance role)."
        )
    if code in {"AccessDenied", "403", "AllAccessDisabled"}:
        permission = _S3_PERMISSION.get(operation, operation)
        return (
            f"Access to {location} was denied ({code}): the AWS credentials in use need the {permission} "
            f"permission on bucket '{bucket}'. Grant it, or run with a role or profile that has it."
        )
    if code in {"NoSuchKey", "404"}:
        return f"{location} does not exist."
    return f"S3 {operation} on {location} failed: {code or error}."


def call_s3(
    client: Any,
    operation: str,
    bucket: str,
    key: str,
    absent_codes: frozenset[str] = frozenset(),
    **kwargs: Any,
) -> Any | None:
    """One S3 call on one object. An error whose code is in ``absent_codes`` means "not there" and gives
    None; any other error becomes an :class:`S3StorageError` that says what to do."""
    try:
        return getattr(client, operation)(Bucket=bucket, Key=key, **kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in absent_codes:
            return None
        raise S3StorageError(s3_error_message(error, operation, bucket, key)) from error


MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404"})


class S3ModelStore(ModelStore):
    """Models on S3, for deployments where runs happen on machines that do not share a disk.

    ``put`` uploads every file, then the manifest last: S3 has no folder rename, so the manifest is what
    makes a stored model visible. ``get`` downloads into ``cache_dir`` (the local layout), checking each
    file's sha256 against the manifest, and renames the checked folder into place.
    """

    bucket: str
    prefix: str = "models"
    s3: S3Resource
    cache_dir: str = ".artifacts/model_cache"

    def _key(self, *parts: str) -> str:
        return "/".join(part.strip("/") for part in (self.prefix, *parts) if part.strip("/"))

    def _folder_key(self, kind: str, sha256: str) -> str:
        return self._key(kind, sha256[:16])

    def _file_key(self, kind: str, sha256: str, path: str) -> str:
        return self._key(kind, sha256[:16], path)

    def _manifest_key(self, kind: str, sha256: str) -> str:
        return self._key(kind, f"{sha256[:16]}{MANIFEST_SUFFIX}")

    def _stored_manifest(self, client: Any, kind: str, sha256: str) -> list[ManifestEntry] | None:
        key = self._manifest_key(kind, sha256)
        response = call_s3(client, "get_object", self.bucket, key, MISSING_OBJECT_CODES)
        if response is None:
            return None
        stored_sha, entries = _parse_manifest(response["Body"].read(), f"s3://{self.bucket}/{key}")
        if stored_sha != sha256:
            raise ValueError(
                f"s3://{self.bucket}/{key} describes model {stored_sha}, not {sha256}: two models share an "
                "address prefix. Delete that manifest and its folder, then re-materialise both models."
            )
        return entries

    def put(
        self,
        folder: Path,
        kind: str,
        label_map: Mapping[Any, str],
        metrics: Mapping[str, float],
    ) -> ModelRef:
        source, entries, sha256 = _addressed(folder, kind)
        client = self.s3.get_client()
        if self._stored_manifest(client, kind, sha256) is None:
            for entry in entries:
                with (source / entry.path).open("rb") as stream:
                    call_s3(
                        client,
                        "put_object",
                        self.bucket,
                        self._file_key(kind, sha256, entry.path),
                        Body=stream,
                    )
            manifest = _manifest_json(sha256, kind, entries)
            call_s3(client, "put_object", self.bucket, self._manifest_key(kind, sha256), Body=manifest)
        uri = f"s3://{self.bucket}/{self._folder_key(kind, sha256)}/"
        return _make_ref(uri, sha256, kind, label_map, metrics)

    def get(self, ref: ModelRef | Mapping[str, Any]) -> Path:
        model_ref = _as_ref(ref)
        cache = _AddressedFolders(Path(self.cache_dir))
        if cache.problem(model_ref.kind, model_ref.sha256) is None:
            return cache.folder(model_ref.kind, model_ref.sha256)
        client = self.s3.get_client()
        entries = self._stored_manifest(client, model_ref.kind, model_ref.sha256)
        if entries is None:
            problem = (
                f"s3://{self.bucket}/{self._manifest_key(model_ref.kind, model_ref.sha256)} does not exist"
            )
            raise FileNotFoundError(_missing_model_message(model_ref, problem))
        staging = cache.staging_folder(model_ref.kind, model_ref.sha256)
        try:
            for entry in entries:
                key = self._file_key(model_ref.kind, model_ref.sha256, entry.path)
                self._download_checked(client, key, staging / entry.path, entry)
            return cache.publish(staging, model_ref.kind, model_ref.sha256, entries)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _download_checked(self, client: Any, key: str, target: Path, entry: ManifestEntry) -> None:
        body = call_s3(client, "get_object", self.bucket, key)["Body"]
        size, sha256 = _copy_hashing(body, target)
        if (size, sha256) != (entry.size, entry.sha256):
            raise ValueError(
                f"s3://{self.bucket}/{key} is damaged: {size} bytes with sha256 {sha256[:16]}..., but its "
                f"manifest says {entry.size} bytes with sha256 {entry.sha256[:16]}.... Delete the manifest "
                "beside it and re-materialise the asset that produced this model."
            )
