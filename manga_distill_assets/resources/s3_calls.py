"""One S3 call on one object, with errors that say what to do: shared by the model store and the IO manager.

A failed call becomes an :class:`S3StorageError` naming the bucket, key and the permission to grant, never
the credentials; a "not there" code can be asked to read as None instead, because a missing object is an
answer (not stored yet) rather than a failure for both callers.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

# The permission each S3 call needs, so that an access-denied error can say what to grant.
_S3_PERMISSION = {
    "head_object": "s3:GetObject",
    "get_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject",
    "list_objects_v2": "s3:ListBucket",
}
_REJECTED_CREDENTIALS_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404"})


class S3StorageError(RuntimeError):
    """An S3 call failed; the message names the bucket, key and what to do, never the credentials."""


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
