"""What every generated package shares: the runtime sources and the bundle file it reads.

The runtime is `app/exports/package_runtime` with the studio's own scoring.py, json_extract.py,
components.py, composite.py, template_sandbox.py and reference_answer.py copied in verbatim (never
rewritten), so the package computes what the studio computes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.rubrics.definition import RubricDefinition
from app.rubrics.output_schema import build_output_schema

_APP = Path(__file__).resolve().parents[2]
RUNTIME_DIR = _APP / "exports" / "package_runtime"
PACKAGE_NAME = "rubric_reward"

# Module name in the package -> the file it is copied from, in dependency order.
RUNTIME_SOURCES: dict[str, Path] = {
    "scoring": _APP / "rubrics" / "scoring.py",
    "json_extract": _APP / "llm" / "json_extract.py",
    "components": _APP / "rewards" / "components.py",
    "composite": _APP / "rewards" / "composite.py",
    "template_sandbox": _APP / "rubrics" / "template_sandbox.py",
    "reference_answer": _APP / "rubrics" / "reference_answer.py",
    "prompt": RUNTIME_DIR / "prompt.py",
    "judge": RUNTIME_DIR / "judge.py",
    "drift_recorder": RUNTIME_DIR / "drift_recorder.py",
    "rows": RUNTIME_DIR / "rows.py",
    "engine": RUNTIME_DIR / "engine.py",
}

REQUIREMENT_PINS = {
    "jinja2": "jinja2>=3.1.4,<4",
    "jsonschema": "jsonschema>=4.18,<5",
    "boto3": "boto3>=1.35",
    "httpx": "httpx>=0.27,<1",
    "langdetect": "langdetect==1.0.9",
}


@dataclass(frozen=True)
class TargetOptions:
    """Settings a target may change without touching the bundle (the spec stays as hashed)."""

    provider: str | None = None
    model_id: str | None = None
    region: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    function_name: str | None = None
    number_generation: int = 8
    lambda_concurrency_limit: int = 100
    grader_model: str = "o4-mini-2025-04-16"
    lambda_architecture: str = "x86_64"  # or "arm64"


def runtime_sources() -> dict[str, str]:
    """{module name: source text} of the runtime, in dependency order."""
    return {name: path.read_text(encoding="utf-8") for name, path in RUNTIME_SOURCES.items()}


def package_init() -> str:
    return (RUNTIME_DIR / "__init__.py").read_text(encoding="utf-8")


def effective_judge(spec: dict[str, Any], options: TargetOptions) -> dict[str, Any]:
    """The spec's judge settings with the target's overrides (e.g. a Bedrock model for Lambda)."""
    judge = dict(spec["judge"])
    if options.provider:
        judge["provider"] = options.provider
    for key in ("model_id", "region", "base_url", "api_key_env"):
        value = getattr(options, key)
        if value:
            judge[key] = value
    if judge.get("provider") != "openai_compat":
        judge["base_url"] = None
        judge["api_key_env"] = None
    if judge.get("provider") != "bedrock":
        judge["region"] = None
    return judge


def _spec_hash(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def runtime_bundle(content: dict[str, Any], options: TargetOptions | None = None) -> dict[str, Any]:
    """The bundle file a package reads: the stored bundle, with the rubric definition back in
    the model's field order (JSON columns may reorder keys) and the exact schema text the studio
    shows the judge.

    A judge override (another provider, model, region or server) changes the reward, so it goes
    INTO the hashed spec: the package then has its own content hash, and its manifest names the
    stored bundle's hash and what was overridden. Without an override the hashes are equal."""
    options = options or TargetOptions()
    spec = json.loads(json.dumps(content["spec"]))
    definition = RubricDefinition.model_validate(spec["rubric"]["definition"])
    spec["rubric"]["definition"] = definition.model_dump(mode="json")
    manifest = dict(content.get("manifest") or {})
    judge = effective_judge(spec, options)
    changed = [
        key
        for key in ("provider", "model_id", "region", "base_url", "api_key_env")
        if getattr(options, key) and judge.get(key) != spec["judge"].get(key)
    ]
    digest = content["content_hash"]
    if changed:
        spec["judge"] = judge
        digest = _spec_hash(spec)
        manifest["bundle_content_hash"] = content["content_hash"]
        manifest["judge_overridden"] = changed
    return {
        "format": content["format"],
        "format_version": content["format_version"],
        "content_hash": digest,
        "spec": spec,
        "manifest": manifest,
        "runtime": {
            "output_schema_text": json.dumps(
                build_output_schema(definition), indent=2, ensure_ascii=False
            ),
            "judge": judge,
        },
    }


def requirements(bundle: dict[str, Any]) -> list[str]:
    """The third-party packages the runtime imports for this bundle."""
    names = ["jinja2", "jsonschema"]
    provider = bundle["runtime"]["judge"].get("provider")
    reward = bundle["spec"]["reward"]
    judge_enabled = (reward.get("judge") or {}).get("enabled", True)
    if judge_enabled and provider == "bedrock":
        names.append("boto3")
    if judge_enabled and provider == "openai_compat":
        names.append("httpx")
    drift = reward.get("drift") or {}
    if drift.get("enabled") and drift.get("s3_bucket") and "boto3" not in names:
        names.append("boto3")  # the Nova Lambda writes drift samples to S3
    if (reward.get("language") or {}).get("enabled"):
        names.append("langdetect")
    return [REQUIREMENT_PINS[name] for name in names]


def bundle_json(bundle: dict[str, Any]) -> str:
    """The bundle file's text (stable: same bundle, same bytes)."""
    return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"


# Code that carries the runtime and the bundle inside one Python file (the trainer module and the
# Lambda's handler.py): loaded as a package registered under `package` in sys.modules, so the
# file needs nothing beside it (nova-forge-sdk's verifier exec()s handler.py with empty globals,
# without __file__). A second file with other sources replaces the package.
_EMBED_TEMPLATE = """
import json as _json
import sys as _sys
import types as _types

_PACKAGE = {package!r}
_SOURCE_HASH = {source_hash!r}
_BUNDLE_TEXT = {bundle_literal}
_SOURCES = {sources_literal}


def _load_runtime():
    \"\"\"The embedded runtime as a package (loaded once per process).\"\"\"
    loaded = _sys.modules.get(_PACKAGE)
    if loaded is not None and getattr(loaded, "SOURCE_HASH", None) == _SOURCE_HASH:
        return loaded
    package = _types.ModuleType(_PACKAGE)
    package.__path__ = []
    package.__package__ = _PACKAGE
    package.SOURCE_HASH = _SOURCE_HASH
    package.BUNDLE = _json.loads(_BUNDLE_TEXT)
    _sys.modules[_PACKAGE] = package
    for name, source in _SOURCES.items():
        module = _types.ModuleType(_PACKAGE + "." + name)
        module.__package__ = _PACKAGE
        module.__file__ = "<" + _PACKAGE + "/" + name + ".py>"
        _sys.modules[module.__name__] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        setattr(package, name, module)
    return package


_runtime = _load_runtime()
_BUNDLE = _runtime.BUNDLE
"""


def embedded_runtime(bundle: dict[str, Any], package: str) -> str:
    """Python code defining `_runtime` (the runtime package) and `_BUNDLE`, sources inside."""
    sources = runtime_sources()
    sources_literal = (
        "{\n" + "".join(f"    {name!r}: {text!r},\n" for name, text in sources.items()) + "}"
    )
    bundle_text = bundle_json(bundle)
    source_hash = hashlib.sha256((bundle_text + sources_literal).encode("utf-8")).hexdigest()
    return _EMBED_TEMPLATE.format(
        package=package,
        source_hash=source_hash[:16],
        bundle_literal=repr(bundle_text),
        sources_literal=sources_literal,
    )
