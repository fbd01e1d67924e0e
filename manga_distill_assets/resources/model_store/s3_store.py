"""The S3 model store, for deployments where runs happen on machines that do not share a disk."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster_aws.s3 import S3Resource

from manga_distill_assets.resources.atomic_files import copy_hashing
from manga_distill_assets.resources.model_store.base import (
    ModelStore,
    as_ref,
    make_ref,
    missing_model_message,
)
from manga_distill_assets.resources.model_store.layout import AddressedFolders
from manga_distill_assets.resources.model_store.manifest import (
    MANIFEST_SUFFIX,
    ManifestEntry,
    addressed,
    manifest_json,
    parse_manifest,
)
from manga_distill_assets.resources.model_store.ref import ModelRef
from manga_distill_assets.resources.s3_calls import MISSING_OBJECT_CODES, call_s3


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
        stored_sha, entries = parse_manifest(response["Body"].read(), f"s3://{self.bucket}/{key}")
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
        source, entries, sha256 = addressed(folder, kind)
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
            manifest = manifest_json(sha256, kind, entries)
            call_s3(client, "put_object", self.bucket, self._manifest_key(kind, sha256), Body=manifest)
        uri = f"s3://{self.bucket}/{self._folder_key(kind, sha256)}/"
        return make_ref(uri, sha256, kind, label_map, metrics)

    def get(self, ref: ModelRef | Mapping[str, Any]) -> Path:
        model_ref = as_ref(ref)
        cache = AddressedFolders(Path(self.cache_dir))
        if cache.problem(model_ref.kind, model_ref.sha256) is None:
            return cache.folder(model_ref.kind, model_ref.sha256)
        client = self.s3.get_client()
        entries = self._stored_manifest(client, model_ref.kind, model_ref.sha256)
        if entries is None:
            problem = (
                f"s3://{self.bucket}/{self._manifest_key(model_ref.kind, model_ref.sha256)} does not exist"
            )
            raise FileNotFoundError(missing_model_message(model_ref, problem))
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
        size, sha256 = copy_hashing(body, target)
        if (size, sha256) != (entry.size, entry.sha256):
            raise ValueError(
                f"s3://{self.bucket}/{key} is damaged: {size} bytes with sha256 {sha256[:16]}..., but its "
                f"manifest says {entry.size} bytes with sha256 {entry.sha256[:16]}.... Delete the manifest "
                "beside it and re-materialise the asset that produced this model."
            )
