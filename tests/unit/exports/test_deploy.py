"""Optional Lambda deployment through boto3, against moto's S3, IAM and Lambda."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from app.exports.deploy import deploy_lambda, vendor_zip
from app.exports.targets.nova_lambda import HANDLER, TIMEOUT_S, build_zip
from tests.unit.exports.builders import legal_content

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="reward-lambda",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="reward-artifacts")
        yield role["Role"]["Arn"]


def test_deploy_creates_then_updates_the_function(aws: str) -> None:
    zip_bytes = build_zip(legal_content())
    name = "rubric-reward-SageMaker-test"
    first = deploy_lambda(
        zip_bytes,
        function_name=name,
        role_arn=aws,
        region=REGION,
        s3_bucket="reward-artifacts",
        reserved_concurrency=100,
        environment={"RUBRIC_JUDGE_CONCURRENCY": "16"},
    )
    assert first.created is True and first.function_arn.endswith(f":function:{name}")
    assert first.code_location == f"s3://reward-artifacts/rubric-studio/{name}.zip"
    s3 = boto3.client("s3", region_name=REGION)
    stored = s3.get_object(Bucket="reward-artifacts", Key=f"rubric-studio/{name}.zip")[
        "Body"
    ].read()
    assert stored == zip_bytes
    lam = boto3.client("lambda", region_name=REGION)
    config = lam.get_function(FunctionName=name)["Configuration"]
    assert config["Handler"] == HANDLER and config["Timeout"] == TIMEOUT_S
    assert config["Environment"]["Variables"] == {"RUBRIC_JUDGE_CONCURRENCY": "16"}
    concurrency = lam.get_function_concurrency(FunctionName=name)
    assert concurrency["ReservedConcurrentExecutions"] == 100

    second = deploy_lambda(zip_bytes, function_name=name, role_arn=aws, region=REGION)
    assert second.created is False and second.code_location == "inline"
    assert second.function_arn == first.function_arn


def test_vendoring_installs_linux_wheels_of_all_but_boto3_next_to_the_handler() -> None:
    calls: list[list[str]] = []

    def fake_pip(command: list[str], check: bool) -> None:
        # What pip would do: install into --target.
        calls.append(command)
        assert check is True
        requirements = Path(command[command.index("--requirement") + 1]).read_text().split()
        assert requirements == ["jinja2>=3.1.4,<4", "jsonschema>=4.18,<5"]
        target = Path(command[command.index("--target") + 1])
        (target / "jinja2").mkdir()
        (target / "jinja2" / "__init__.py").write_text("# vendored\n")

    original = build_zip(legal_content())
    vendored = vendor_zip(original, runner=fake_pip)
    [command] = calls
    assert command[command.index("--platform") + 1] == "manylinux2014_x86_64"
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in command
    with zipfile.ZipFile(io.BytesIO(vendored)) as archive:
        names = set(archive.namelist())
        assert archive.read("jinja2/__init__.py") == b"# vendored\n"
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        assert set(archive.namelist()) | {"jinja2/__init__.py"} == names


def test_vendoring_and_deploying_for_arm64() -> None:
    calls: list[list[str]] = []
    vendor_zip(
        build_zip(legal_content()),
        architecture="arm64",
        runner=lambda command, check: calls.append(command),
    )
    [command] = calls
    assert command[command.index("--platform") + 1] == "manylinux2014_aarch64"
    assert command[command.index("--implementation") + 1] == "cp"
    with pytest.raises(ValueError, match="architecture"):
        vendor_zip(build_zip(legal_content()), architecture="sparc", runner=lambda *a, **k: None)


def test_deploy_sets_the_architecture(aws: str) -> None:
    name = "rubric-reward-SageMaker-arm"
    deploy_lambda(
        build_zip(legal_content()),
        function_name=name,
        role_arn=aws,
        region=REGION,
        architecture="arm64",
    )
    config = boto3.client("lambda", region_name=REGION).get_function(FunctionName=name)
    assert config["Configuration"]["Architectures"] == ["arm64"]
