"""Optional deployment of the Nova reward Lambda: vendor its requirements into the zip (pip),
upload the zip to S3 (optional) and create or update the function with boto3. Credentials come
from the standard AWS chain only.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.exports.targets.nova_lambda import (
    ARCHITECTURES,
    HANDLER,
    MEMORY_MB,
    PYTHON_VERSION,
    RUNTIME,
    TIMEOUT_S,
)

# The Lambda Python runtime already ships boto3 (and botocore): not vendored.
RUNTIME_PROVIDED = ("boto3", "botocore")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def pip_command(
    requirements: Path, target: Path, python_version: str, architecture: str = "x86_64"
) -> list[str]:
    """pip installing Linux wheels for the Lambda's architecture (x86_64 or arm64) and Python
    runtime, whatever the local machine."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}")
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--requirement",
        str(requirements),
        "--target",
        str(target),
        "--platform",
        ARCHITECTURES[architecture],
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--upgrade",
    ]


def vendor_zip(
    zip_bytes: bytes,
    *,
    python_version: str = PYTHON_VERSION,
    architecture: str = "x86_64",
    runner: Callable[..., Any] = subprocess.run,
) -> bytes:
    """The Lambda zip with its requirements (except what the runtime provides) installed next
    to handler.py for that architecture and Python, ready to upload. Needs the package index."""
    with tempfile.TemporaryDirectory(prefix="rubric-lambda-") as tmp:
        root = Path(tmp) / "function"
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            archive.extractall(root)
        wanted = [
            line
            for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().lower().startswith(RUNTIME_PROVIDED)
        ]
        if wanted:
            requirements = Path(tmp) / "vendor-requirements.txt"
            requirements.write_text("\n".join(wanted) + "\n", encoding="utf-8")
            runner(pip_command(requirements, root, python_version, architecture), check=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                if "__pycache__" in path.parts:
                    continue
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        return buffer.getvalue()


@dataclass(frozen=True)
class DeployResult:
    function_name: str
    function_arn: str
    created: bool
    code_location: str  # s3://bucket/key, or "inline"


def _client(service: str, region: str | None, client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    factory: Any = boto3.client  # typed per service name; the name here is a variable
    return factory(service, region_name=region)


def _wait(lambda_client: Any, name: str) -> None:
    # A function accepts no further change until the previous one finished (real AWS).
    with contextlib.suppress(Exception):  # waiters are best effort (older botocore, mocks)
        lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)


def deploy_lambda(
    zip_bytes: bytes,
    *,
    function_name: str,
    role_arn: str,
    region: str | None = None,
    s3_bucket: str | None = None,
    s3_key: str | None = None,
    reserved_concurrency: int | None = None,
    environment: dict[str, str] | None = None,
    description: str = "Rubric Studio reward function for Amazon Nova RFT",
    architecture: str = "x86_64",
    lambda_client: Any = None,
    s3_client: Any = None,
) -> DeployResult:
    """Create the function, or update its code and configuration when it exists."""
    lam = _client("lambda", region, lambda_client)
    if s3_bucket:
        key = s3_key or f"rubric-studio/{function_name}.zip"
        _client("s3", region, s3_client).put_object(Bucket=s3_bucket, Key=key, Body=zip_bytes)
        code: dict[str, Any] = {"S3Bucket": s3_bucket, "S3Key": key}
        location = f"s3://{s3_bucket}/{key}"
    else:
        code = {"ZipFile": zip_bytes}
        location = "inline"
    settings: dict[str, Any] = {
        "Role": role_arn,
        "Handler": HANDLER,
        "Runtime": RUNTIME,
        "Timeout": TIMEOUT_S,
        "MemorySize": MEMORY_MB,
        "Description": description[:256],
        "Environment": {"Variables": dict(environment or {})},
    }
    architectures = {"Architectures": [architecture]}
    try:
        lam.get_function(FunctionName=function_name)
        exists = True
    except lam.exceptions.ResourceNotFoundException:
        exists = False
    if exists:
        response = lam.update_function_code(FunctionName=function_name, **code, **architectures)
        _wait(lam, function_name)
        lam.update_function_configuration(FunctionName=function_name, **settings)
        _wait(lam, function_name)
    else:
        response = lam.create_function(
            FunctionName=function_name, Code=code, **settings, **architectures
        )
    if reserved_concurrency is not None:
        lam.put_function_concurrency(
            FunctionName=function_name, ReservedConcurrentExecutions=reserved_concurrency
        )
    return DeployResult(
        function_name=function_name,
        function_arn=str(response["FunctionArn"]),
        created=not exists,
        code_location=location,
    )
