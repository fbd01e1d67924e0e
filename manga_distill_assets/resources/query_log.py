"""Where a day of customer queries comes from: a simulator (the default), a local folder, or S3.

All three share one layout and one contract, so an asset reads any of them the same way and a deployment
switches source by configuration alone. The log is partitioned by day as `dt=YYYY-MM-DD/` holding any number
of `*.jsonl` and `*.jsonl.gz` files, directly or in `key=value` sub-folders (`hour=01/`), read in name order;
any other file fails the day naming it (`data.query_log.day_log_files`).

Missing and empty days differ on purpose. A day whose folder (or S3 prefix) does not exist has not landed
yet: `read_day` raises `DayNotFound`, so a nightly run fails instead of recording an empty day as real data,
and the partition can be re-run once the day lands. A day folder that exists but holds no lines is a real,
quiet day: `read_day` returns zero rows, and the asset flags it in metadata.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from botocore.exceptions import ClientError, NoCredentialsError
from dagster_aws.s3 import S3Resource
from pydantic import Field

from manga_distill_assets.data.query_log import (
    DayNotFound,
    ParsedDay,
    concat_days,
    day_log_files,
    parse_log_stream,
    parse_query_lines,
    read_day_folder,
)

_ACCESS_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "403"}
_REJECTED_CREDENTIALS_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_MISSING_BUCKET_CODES = {"NoSuchBucket"}


class S3QueryLogError(RuntimeError):
    """The S3 log cannot be read at all (no bucket, permission or credentials): configuration must change."""


class QueryLogSource(dg.ConfigurableResource):
    """A source of daily query logs. `read_day` raises `DayNotFound` for a day that has not landed yet."""

    def read_day(self, day: date) -> ParsedDay:
        raise NotImplementedError(f"{type(self).__name__} must implement read_day")


class SimulatedQueryLog(QueryLogSource):
    """A realistic synthetic day, the same for the same day and seed, so the whole graph runs offline.

    Every day exists: the simulator never raises `DayNotFound`.
    """

    seed: int = Field(
        default=0, description="Seed of the simulator; with the day it fixes the day's queries."
    )
    mean_volume: int = Field(default=400, gt=0, description="Average number of queries in a simulated day.")

    def read_day(self, day: date) -> ParsedDay:
        from manga_distill_assets.data.query_simulator import simulate_day

        lines = simulate_day(day, seed=self.seed, mean_volume=self.mean_volume)
        return parse_query_lines(lines, source="simulated")


class LocalQueryLog(QueryLogSource):
    """Days under `<root>/dt=YYYY-MM-DD/`.

    A missing day folder raises `DayNotFound` (not landed yet); an existing folder without lines is an empty
    day (zero rows). A missing root is a configuration error, not a missing day, and says so.
    """

    root: str = Field(description="Folder that holds one dt=YYYY-MM-DD sub-folder per day.")

    def read_day(self, day: date) -> ParsedDay:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(
                f"Query log root {root} does not exist; "
                "set LocalQueryLog.root to the folder that holds the dt=YYYY-MM-DD folders."
            )
        return read_day_folder(root / f"dt={day.isoformat()}")


class S3QueryLog(QueryLogSource):
    """Days under `s3://<bucket>/<prefix>/dt=YYYY-MM-DD/`, read through dagster-aws's `S3Resource`.

    S3 has no folders, so a day has landed when any object exists under its prefix (a log file, a `_SUCCESS`
    marker, or a zero-byte `dt=.../` folder object): no object raises `DayNotFound`; objects but no lines
    give an empty day (zero rows). As in a local folder, log files directly under the day prefix and under
    `key=value` sub-prefixes are read, and any other object fails the day naming it.
    Needs s3:ListBucket on the bucket and s3:GetObject on the prefix.
    Credentials come from `S3Resource` or the usual AWS chain and never appear in an error.
    """

    bucket: str = Field(description="Bucket that holds the query log.")
    prefix: str = Field(
        default="", description="Key prefix above the dt=YYYY-MM-DD folders; empty for the root."
    )
    s3: S3Resource

    @classmethod
    def from_uri(cls, uri: str, s3: S3Resource, setting: str = "uri") -> S3QueryLog:
        """`s3://bucket/prefix` as a deployment writes it in one environment variable."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(
                f"{setting}={uri!r} is not an S3 URI: write it as s3://<bucket>/<prefix>, the prefix "
                "above the dt=YYYY-MM-DD folders."
            )
        return cls(bucket=parsed.netloc, prefix=parsed.path.strip("/"), s3=s3)

    def read_day(self, day: date) -> ParsedDay:
        client = self.s3.get_client()
        day_prefix = self._day_prefix(day)
        keys = self._list_keys(client, day_prefix)
        if not keys:
            raise DayNotFound(day, f"s3://{self.bucket}/{day_prefix}")
        files = day_log_files(
            (key.removeprefix(day_prefix) for key in keys), f"s3://{self.bucket}/{day_prefix}"
        )
        return concat_days(self._read_object(client, day_prefix + name, name) for name in files)

    def _day_prefix(self, day: date) -> str:
        base = self.prefix.strip("/")
        return f"{base}/dt={day.isoformat()}/" if base else f"dt={day.isoformat()}/"

    def _list_keys(self, client: Any, day_prefix: str) -> list[str]:
        paginator = client.get_paginator("list_objects_v2")
        try:
            return [
                item["Key"]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=day_prefix)
                for item in page.get("Contents", [])
            ]
        except ClientError as err:
            self._raise_explained(err, f"s3://{self.bucket}/{day_prefix}", f"s3:ListBucket on {self._arn()}")
            raise
        except NoCredentialsError as err:
            raise self._no_credentials() from err

    def _read_object(self, client: Any, key: str, name: str) -> ParsedDay:
        try:
            body = client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as err:
            self._raise_explained(err, f"s3://{self.bucket}/{key}", f"s3:GetObject on {self._arn(key)}")
            raise
        with body:
            return parse_log_stream(io.BufferedReader(body), name)

    def _arn(self, key: str = "") -> str:
        return f"arn:aws:s3:::{self.bucket}/{key}" if key else f"arn:aws:s3:::{self.bucket}"

    def _raise_explained(self, err: ClientError, location: str, needed: str) -> None:
        """Turn the errors that configuration causes into a message saying what to change; leave the rest."""
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_BUCKET_CODES:
            raise S3QueryLogError(
                f"S3 bucket {self.bucket!r} does not exist at this endpoint; check S3QueryLog.bucket "
                "(MANGA_QUERY_LOG_S3_URI in production) and the endpoint and region (AWS_ENDPOINT_URL_S3, "
                "AWS_REGION)."
            ) from err
        if code in _ACCESS_DENIED_CODES:
            raise S3QueryLogError(
                f"Access denied reading {location}: the credentials need {needed}. Grant it, or run with "
                "a role or profile that has it."
            ) from err
        if code in _REJECTED_CREDENTIALS_CODES:
            raise S3QueryLogError(
                f"The AWS credentials were rejected reading {location} ({code}): refresh or replace them "
                "(environment, profile or instance role)."
            ) from err

    def _no_credentials(self) -> S3QueryLogError:
        return S3QueryLogError(
            f"No AWS credentials found to read s3://{self.bucket}/: set them in the environment, "
            "an AWS profile (S3Resource.profile_name) or an instance role."
        )
