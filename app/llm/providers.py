"""Build the judge provider a configuration describes (OpenAI-compatible, Bedrock or the test
double). Kept apart from `config.py`, which the providers themselves import."""

from __future__ import annotations

from typing import Any

from app.llm.base import JudgeProvider
from app.llm.config import ProviderConfig
from app.llm.egress import EgressPolicy


def make_provider(
    cfg: ProviderConfig, *, bedrock_client: Any = None, egress: EgressPolicy | None = None
) -> JudgeProvider:
    """Build the provider `cfg` describes. `bedrock_client` lets tests inject a stubbed client;
    `egress` defaults to the process's settings."""
    if cfg.provider == "openai_compat":
        from app.llm.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(cfg, egress=egress)
    if cfg.provider == "bedrock":
        # Imported lazily: boto3 is slow to import and only Bedrock judges need it.
        from app.llm.bedrock import BedrockProvider

        return BedrockProvider(cfg, client=bedrock_client)
    from app.llm.fake import FakeProvider

    return FakeProvider(model_id=cfg.model_id, concurrency=cfg.concurrency)
