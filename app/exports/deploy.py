"""Optional deployment of the Nova reward Lambda with boto3: upload the zip to S3 (optional) and
create or update the function. Credentials come from the standard AWS chain only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from app.exports.targets.nova_lambda import HANDLER, MEMORY_MB, RUNTIME, TIMEOUT_S


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
    try:
        lam.get_function(FunctionName=function_name)
        exists = True
    except lam.exceptions.ResourceNotFoundException:
        exists = False
    if exists:
        response = lam.update_function_code(FunctionName=function_name, **code)
        _wait(lam, function_name)
        lam.update_function_configuration(FunctionName=function_name, **settings)
        _wait(lam, function_name)
    else:
        response = lam.create_function(FunctionName=function_name, Code=code, **settings)
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
