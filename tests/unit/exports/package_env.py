"""Run a generated package the way a fresh environment would: unzipped into its own folder, with
only the third-party packages its requirements.txt declares (and what those require).

The declared distributions are linked from this virtualenv's site-packages into a private folder
and the package runs in a subprocess started with `python -S` (no site-packages at all), so an
undeclared import fails exactly as it would after `pip install -r requirements.txt`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def unzip(data: bytes, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(dest)
    return dest


def declared_site(requirements: list[str], dest: Path) -> Path:
    """A folder holding links to the declared distributions and their dependencies only."""
    dest.mkdir(parents=True, exist_ok=True)
    pending = [Requirement(line).name for line in requirements if line.strip()]
    seen: set[str] = set()
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
        root = Path(str(dist.locate_file("")))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top.startswith("..") or top == "__pycache__":
                continue  # console scripts live outside site-packages
            source = root / top
            target = dest / top
            if source.exists() and not target.exists():
                target.symlink_to(source)
    return dest


def run_in_package(package_dir: Path, site_dir: Path, script: str, payload: Any) -> Any:
    """Run `script` (which reads PAYLOAD and prints one JSON value) in the isolated package."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(package_dir), str(site_dir)]),
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(package_dir),
    }
    payload_file = package_dir / "_payload.json"
    payload_file.write_text(json.dumps(payload), encoding="utf-8")
    prelude = (
        "import json\n"
        f"with open({str(payload_file)!r}, encoding='utf-8') as _fh:\n"
        "    PAYLOAD = json.load(_fh)\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", prelude + script],
        cwd=package_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# Runs handler.lambda_handler(PAYLOAD["event"], None) with Bedrock replaced by a botocore Stubber
# that plays PAYLOAD["script"] in order: {"text": reply} answers, {"error": code, "status": n}.
LAMBDA_STUB_SCRIPT = """
import importlib.util
import os

for key, value in PAYLOAD.get("env", {}).items():
    os.environ[key] = value
studio_importable = importlib.util.find_spec("app") is not None
pydantic_importable = importlib.util.find_spec("pydantic") is not None

import boto3
from botocore.stub import Stubber

import handler

client = boto3.client(
    "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
)
stub = Stubber(client)
for step in PAYLOAD["script"]:
    if "error" in step:
        stub.add_client_error("converse", step["error"], "injected", step["status"])
    else:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": step["text"]}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            },
        )
handler.client_factory = lambda: client
handler.sleep = lambda seconds: None
with stub:
    output = handler.lambda_handler(PAYLOAD["event"], None)
    stub.assert_no_pending_responses()
print(json.dumps({
    "output": output,
    "studio_importable": studio_importable,
    "pydantic_importable": pydantic_importable,
}))
"""


def run_lambda(
    zip_bytes: bytes, workdir: Path, event: Any, script: list[dict[str, Any]], env: dict[str, str]
) -> dict[str, Any]:
    """Unzip into a fresh folder and run the handler there with only the declared packages."""
    package = unzip(zip_bytes, workdir / "function")
    requirements = (package / "requirements.txt").read_text().split()
    site = declared_site(requirements, workdir / "site")
    return run_in_package(
        package, site, LAMBDA_STUB_SCRIPT, {"event": event, "script": script, "env": env}
    )


# Runs the handler inside moto's S3 mock with the judge stubbed as in LAMBDA_STUB_SCRIPT, then
# prints the output and every object written to PAYLOAD["bucket"] (gunzipped text by key).
LAMBDA_S3_SCRIPT = """
import gzip
import os

for key, value in PAYLOAD.get("env", {}).items():
    os.environ[key] = value

import boto3
from botocore.stub import Stubber
from moto import mock_aws

import handler

with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=PAYLOAD["bucket"])
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    stub = Stubber(client)
    for step in PAYLOAD["script"]:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": step["text"]}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            },
        )
    handler.client_factory = lambda: client
    handler.sleep = lambda seconds: None
    outputs = []
    with stub:
        for event in PAYLOAD["events"]:
            outputs.append(handler.lambda_handler(event, None))
    objects = {}
    listing = s3.list_objects_v2(Bucket=PAYLOAD["bucket"]).get("Contents", [])
    for entry in listing:
        body = s3.get_object(Bucket=PAYLOAD["bucket"], Key=entry["Key"])["Body"].read()
        objects[entry["Key"]] = gzip.decompress(body).decode("utf-8")
    stats = dict(handler.get_engine().drift.stats)
print(json.dumps({"outputs": outputs, "objects": objects, "stats": stats}))
"""


def run_lambda_with_s3(
    zip_bytes: bytes,
    workdir: Path,
    events: list[Any],
    script: list[dict[str, Any]],
    bucket: str,
    env: dict[str, str],
) -> dict[str, Any]:
    """Like run_lambda, inside moto's S3 mock (moto is linked for the test harness only; the
    function itself still sees only what requirements.txt declares)."""
    package = unzip(zip_bytes, workdir / "function")
    requirements = (package / "requirements.txt").read_text().split()
    site = declared_site([*requirements, "moto"], workdir / "site")
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    payload = {"events": events, "script": script, "bucket": bucket, "env": aws | env}
    return run_in_package(package, site, LAMBDA_S3_SCRIPT, payload)
