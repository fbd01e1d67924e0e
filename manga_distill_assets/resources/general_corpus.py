"""Where the general distillation stage reads its text: local files and folders, or an S3 prefix.

A resource rather than run config, so that every run of `general_student` reads the same corpus; what it
read is fingerprinted into the asset's data version, so the task stage knows when it changed. Files are
plain UTF-8 text, one paragraph a line (WikiText's layout); a folder or a prefix contributes every `.txt`
under it, in name order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from botocore.exceptions import ClientError, NoCredentialsError
from dagster_aws.s3 import S3Resource
from pydantic import Field

from manga_distill_assets.resources.s3_calls import S3StorageError, call_s3, s3_error_message

DEFAULT_GENERAL_CORPUS = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "general_corpus" / "wikitext2_valid.txt"
)
"""WikiText-2's validation text (CC BY-SA 3.0) beside the repository; MANGA_GENERAL_CORPUS replaces it."""
CORPUS_VARIABLE = "MANGA_GENERAL_CORPUS"
TEXT_SUFFIX = ".txt"


class GeneralCorpusSource(dg.ConfigurableResource):
    """A general text corpus: `read()` gives (name, lines) per file, in a fixed order."""

    def read(self) -> list[tuple[str, list[str]]]:
        raise NotImplementedError(f"{type(self).__name__} must implement read")


class LocalGeneralCorpus(GeneralCorpusSource):
    """Text files, and folders whose `.txt` files (at any depth) are read."""

    paths: list[str] = Field(
        default_factory=lambda: [str(DEFAULT_GENERAL_CORPUS)],
        min_length=1,
        description="Files or folders of plain text, one paragraph a line.",
    )

    def read(self) -> list[tuple[str, list[str]]]:
        files: list[Path] = []
        for entry in map(Path, self.paths):
            if entry.is_dir():
                files.extend(sorted(entry.rglob(f"*{TEXT_SUFFIX}")))
            elif entry.is_file():
                files.append(entry)
            else:
                raise FileNotFoundError(
                    f"The general corpus path {entry} does not exist. Point {CORPUS_VARIABLE} (or "
                    "LocalGeneralCorpus.paths) at text files or folders, or at s3://bucket/prefix."
                )
        if not files:
            raise FileNotFoundError(
                f"The general corpus paths {self.paths} hold no {TEXT_SUFFIX} files; add some, or point "
                f"{CORPUS_VARIABLE} elsewhere."
            )
        return [(str(path), _lines(path.read_bytes(), str(path))) for path in files]


class S3GeneralCorpus(GeneralCorpusSource):
    """Every `.txt` object under `s3://bucket/prefix/`. Needs s3:ListBucket and s3:GetObject; credentials
    come only from `S3Resource` and the standard AWS chain."""

    bucket: str
    prefix: str = ""
    s3: S3Resource

    @classmethod
    def from_uri(cls, uri: str, s3: S3Resource) -> S3GeneralCorpus:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(
                f"{CORPUS_VARIABLE}={uri!r} is not an S3 URI: write it as s3://<bucket>/<prefix>."
            )
        return cls(bucket=parsed.netloc, prefix=parsed.path.strip("/"), s3=s3)

    def read(self) -> list[tuple[str, list[str]]]:
        client = self.s3.get_client()
        prefix = f"{self.prefix.strip('/')}/" if self.prefix.strip("/") else ""
        keys = sorted(key for key in self._keys(client, prefix) if key.endswith(TEXT_SUFFIX))
        if not keys:
            raise FileNotFoundError(
                f"s3://{self.bucket}/{prefix} holds no {TEXT_SUFFIX} objects; upload the corpus there, or "
                f"point {CORPUS_VARIABLE} elsewhere."
            )
        corpus = []
        for key in keys:
            body = call_s3(client, "get_object", self.bucket, key)["Body"]
            with body:
                corpus.append((f"s3://{self.bucket}/{key}", _lines(body.read(), f"s3://{self.bucket}/{key}")))
        return corpus

    def _keys(self, client: Any, prefix: str) -> list[str]:
        try:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]
        except ClientError as error:
            raise S3StorageError(s3_error_message(error, "list_objects_v2", self.bucket, prefix)) from error
        except NoCredentialsError as error:
            raise S3StorageError(
                f"No AWS credentials found to list s3://{self.bucket}/{prefix}: set them in the environment, "
                "an AWS profile or an instance role."
            ) from error


def general_corpus_from_env(value: str | None) -> GeneralCorpusSource:
    """`MANGA_GENERAL_CORPUS`: one s3:// URI, or local paths separated by commas; unset, the default file."""
    if not value:
        return LocalGeneralCorpus()
    if value.startswith("s3://"):
        return S3GeneralCorpus.from_uri(value, S3Resource())
    return LocalGeneralCorpus(paths=[part.strip() for part in value.split(",") if part.strip()])


def _lines(data: bytes, name: str) -> list[str]:
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The general corpus file {name} is not UTF-8 text (byte {error.start}); convert it, or leave it "
            "out of the corpus."
        ) from error
