"""Drift samples from an S3 prefix (where the exported Nova Lambda writes them): every object
under the prefix, in key order, gzip or not, streamed into one local JSONL file for the import.
Credentials come from the environment or IAM (boto3's own chain), never from the database."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

from app.core.config import Settings
from app.core.errors import InvalidInput

CHUNK = 1024 * 1024


def s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def download_prefix(
    settings: Settings, bucket: str, prefix: str, client: Any | None = None
) -> tuple[str, int]:
    """(local path, size): the objects' lines concatenated, each object ending with a newline."""
    client = client or s3_client()
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    path = settings.upload_dir / f"drift-s3-{uuid.uuid4().hex}.jsonl"
    size = 0
    objects = 0
    try:
        with path.open("wb") as out:
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/"):
                        continue
                    body = client.get_object(Bucket=bucket, Key=key)["Body"]
                    stream: Any = gzip.GzipFile(fileobj=body) if key.endswith(".gz") else body
                    last = b"\n"
                    while chunk := stream.read(CHUNK):
                        out.write(chunk)
                        size += len(chunk)
                        last = chunk[-1:]
                    if last != b"\n":
                        out.write(b"\n")
                        size += 1
                    objects += 1
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if not objects:
        path.unlink(missing_ok=True)
        raise InvalidInput(f"no objects under s3://{bucket}/{prefix}")
    return str(path), size
