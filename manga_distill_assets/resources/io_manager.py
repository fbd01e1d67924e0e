"""Where assets' return values are kept between steps: tables as Parquet, small values as JSON.

One file per asset (or per partition)::

    <base>/<asset key path>/data.parquet             an unpartitioned asset
    <base>/<asset key path>/<partition key>.json     one partition (keys are percent-encoded file names)

A pandas DataFrame is stored as Parquet; a dict, a list or a :class:`ModelRef` as JSON. An input annotated as
``ModelRef`` gets a ``ModelRef`` back; other JSON values come back as plain dicts and lists.

Writes never leave a half-written value and never lose the stored one: the value is serialised in memory
first (so a value that cannot be stored changes nothing), then written to a temporary file that replaces
the old one with ``os.replace``. On S3 a PUT replaces an object atomically by itself, so the bytes are
simply PUT once serialised.

An input covering several partitions (e.g. the last 30 days of a daily asset) comes back as one DataFrame,
the partitions concatenated in partition order, or as ``{partition key: value}`` for JSON values. A partition
that was never stored (a day that never landed) is skipped with a warning, so one missing day does not stop
the window; if none of the partitions is stored, loading fails.
"""

from __future__ import annotations

import io
import json
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import (
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    InputContext,
    MetadataValue,
    OutputContext,
)
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from manga_distill_assets.resources.atomic_files import write_atomically
from manga_distill_assets.resources.model_store import ModelRef
from manga_distill_assets.resources.s3_calls import MISSING_OBJECT_CODES, call_s3

PARQUET = ".parquet"
JSON = ".json"
UNPARTITIONED_NAME = "data"
# Looked up in this order when loading; only one exists after a successful write.
_SUFFIXES = (PARQUET, JSON)


def _json_default(value: Any) -> Any:
    """Numpy scalars (a metric from ``np.mean``) are stored as the plain numbers they stand for."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serialisable")


def encode_value(value: Any) -> tuple[str, bytes]:
    """The file suffix and the bytes a value is stored as."""
    if isinstance(value, pd.DataFrame):
        buffer = io.BytesIO()
        value.to_parquet(buffer, engine="pyarrow")
        return PARQUET, buffer.getvalue()
    if isinstance(value, ModelRef):
        value = value.to_dict()
    if isinstance(value, dict | list):
        return JSON, json.dumps(value, indent=2, ensure_ascii=False, default=_json_default).encode()
    raise TypeError(
        f"a {type(value).__name__} cannot be stored: return a pandas DataFrame, a dict, a list or a ModelRef"
    )


def decode_value(suffix: str, data: bytes) -> Any:
    if suffix == PARQUET:
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    return json.loads(data)


def _asset_parts(context: InputContext | OutputContext) -> list[str]:
    if context.has_asset_key:
        return list(context.asset_key.path)
    upstream = context.upstream_output if isinstance(context, InputContext) else context
    if upstream is None:
        raise ValueError("An input without an asset key or upstream output has nothing to load from.")
    return list(upstream.get_identifier())


def _stored_name(partition_key: str | None) -> str:
    return UNPARTITIONED_NAME if partition_key is None else quote(partition_key, safe="")


def _wants_model_ref(context: InputContext) -> bool:
    try:
        return context.dagster_type.typing_type is ModelRef
    except DagsterInvariantViolationError:  # a context built without a type, as in build_input_context()
        return False


def _as_requested_type(context: InputContext, value: Any) -> Any:
    return ModelRef.from_dict(value) if isinstance(value, dict) and _wants_model_ref(context) else value


class _StoredValueIOManager(ConfigurableIOManager):
    """Serialisation, paths and partition handling; subclasses only move bytes."""

    @abstractmethod
    def _write(self, location: str, data: bytes) -> None:
        """Replace whatever is stored at ``location`` with ``data``, all or nothing."""

    @abstractmethod
    def _read(self, location: str) -> bytes | None:
        """The bytes at ``location``, or None when nothing is stored there."""

    @abstractmethod
    def _exists(self, location: str) -> bool: ...

    @abstractmethod
    def _delete(self, location: str) -> None: ...

    @abstractmethod
    def _describe(self, location: str) -> str:
        """The full path or URI of ``location``, for messages and metadata."""

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            context.log.debug("The step returned None; nothing is stored.")
            return
        location = "/".join([*_asset_parts(context), _stored_name(self._output_partition(context))])
        try:
            suffix, data = encode_value(obj)
        except (TypeError, ValueError, pa.ArrowException) as error:
            raise TypeError(
                f"Could not store the output of {'/'.join(_asset_parts(context))}: {error}. "
                f"Nothing stored at {self._describe(location)}.* was changed."
            ) from error
        self._write(location + suffix, data)
        for stale in (other for other in _SUFFIXES if other != suffix):
            if self._exists(location + stale):
                self._delete(location + stale)
        context.add_output_metadata({"path": MetadataValue.path(self._describe(location + suffix))})

    def _output_partition(self, context: OutputContext) -> str | None:
        if not context.has_asset_partitions:
            return None
        keys = context.asset_partition_keys
        if len(keys) != 1:
            raise ValueError(
                f"{'/'.join(_asset_parts(context))} returned one value for {len(keys)} partitions; "
                "launch the backfill as one run per partition."
            )
        return keys[0]

    def load_input(self, context: InputContext) -> Any:
        parts = _asset_parts(context)
        if not (context.has_asset_key and context.has_asset_partitions):
            return _as_requested_type(context, self._load_required(parts, None))
        keys = context.asset_partition_keys
        if len(keys) == 1:
            return _as_requested_type(context, self._load_required(parts, keys[0]))
        return self._load_window(context, parts, keys)

    def _load(self, parts: list[str], partition_key: str | None) -> Any | None:
        location = "/".join([*parts, _stored_name(partition_key)])
        for suffix in _SUFFIXES:
            data = self._read(location + suffix)
            if data is not None:
                return decode_value(suffix, data)
        return None

    def _load_required(self, parts: list[str], partition_key: str | None) -> Any:
        value = self._load(parts, partition_key)
        if value is None:
            what = "/".join(parts) + ("" if partition_key is None else f" partition {partition_key}")
            location = self._describe("/".join([*parts, _stored_name(partition_key)]))
            raise FileNotFoundError(
                f"Nothing is stored for {what} ({location}.parquet or .json): materialise {what} first."
            )
        return value

    def _load_window(self, context: InputContext, parts: list[str], keys: Sequence[str]) -> Any:
        asset = "/".join(parts)
        loaded: dict[str, Any] = {}
        for key in keys:
            value = self._load(parts, key)
            if value is None:
                context.log.warning(
                    f"Partition {key} of {asset} was never stored (a day that never landed?); "
                    "loading the window without it."
                )
            else:
                loaded[key] = value
        if not loaded:
            window = f"{keys[0]}..{keys[-1]}" if keys else "an empty window"
            raise FileNotFoundError(
                f"None of the {len(keys)} partitions of {asset} in {window} is stored: materialise them."
            )
        context.log.info(f"Loaded {len(loaded)} of {len(keys)} partitions of {asset}.")
        if all(isinstance(value, pd.DataFrame) for value in loaded.values()):
            return pd.concat(list(loaded.values()), ignore_index=True)
        return loaded


class TableIOManager(_StoredValueIOManager):
    """Asset values on local disk: the default."""

    base_dir: str = ".artifacts/assets"

    def _path(self, location: str) -> Path:
        return Path(self.base_dir, *location.split("/"))

    def _write(self, location: str, data: bytes) -> None:
        write_atomically(self._path(location), data)

    def _read(self, location: str) -> bytes | None:
        path = self._path(location)
        return path.read_bytes() if path.is_file() else None

    def _exists(self, location: str) -> bool:
        return self._path(location).is_file()

    def _delete(self, location: str) -> None:
        self._path(location).unlink(missing_ok=True)

    def _describe(self, location: str) -> str:
        return str(self._path(location).resolve())


class S3TableIOManager(_StoredValueIOManager):
    """Asset values on S3, for deployments whose runs do not share a disk."""

    bucket: str
    prefix: str = "assets"
    s3: S3Resource

    _client: Any = PrivateAttr(default=None)

    def _key(self, location: str) -> str:
        return "/".join(part for part in (self.prefix.strip("/"), location) if part)

    def _call(self, operation: str, location: str, absent_codes: frozenset[str], **kwargs: Any) -> Any | None:
        if self._client is None:
            self._client = self.s3.get_client()  # one client for all partitions of a window
        return call_s3(self._client, operation, self.bucket, self._key(location), absent_codes, **kwargs)

    def _write(self, location: str, data: bytes) -> None:
        self._call("put_object", location, frozenset(), Body=data)

    def _read(self, location: str) -> bytes | None:
        response = self._call("get_object", location, MISSING_OBJECT_CODES)
        return None if response is None else response["Body"].read()

    def _exists(self, location: str) -> bool:
        """True only when the object is certainly there: without s3:ListBucket a missing key reads as 403."""
        return self._call("head_object", location, MISSING_OBJECT_CODES | {"403", "AccessDenied"}) is not None

    def _delete(self, location: str) -> None:
        self._call("delete_object", location, frozenset())

    def _describe(self, location: str) -> str:
        return f"s3://{self.bucket}/{self._key(location)}"
