"""Judge provider settings (what a judge configuration stores) and the factory for providers.

Secrets are never part of this config: `api_key_env` names an environment variable, and Bedrock
uses the standard AWS credential chain.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.llm.base import JudgeCall
from app.llm.egress import EgressPolicy
from app.llm.retry import RetryPolicy, Sleeper

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProviderConfig(BaseModel):
    """Provider, model, sampling, concurrency and retry settings for one judge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["openai_compat", "bedrock", "fake"]
    model_id: str = Field(min_length=1, max_length=2048)
    base_url: str | None = None
    api_key_env: str | None = None
    region: str | None = None
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1, le=200_000)
    concurrency: int = Field(default=8, ge=1, le=1024)
    timeout_s: float = Field(default=60.0, gt=0.0, le=3600.0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    base_delay_s: float = Field(default=1.0, ge=0.0, le=600.0)
    max_delay_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"

    @field_validator("api_key_env")
    @classmethod
    def _env_var_name(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not _ENV_NAME.match(value):
            # Most likely a pasted key: refuse it rather than store a secret.
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "not the key itself"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _provider_fields(self) -> ProviderConfig:
        if self.provider == "openai_compat" and not self.base_url:
            raise ValueError("base_url is required for an OpenAI-compatible provider")
        if self.provider == "bedrock" and self.temperature is not None and self.temperature > 1:
            raise ValueError("Bedrock accepts temperature between 0 and 1")
        if self.max_delay_s < self.base_delay_s:
            raise ValueError("max_delay_s must be at least base_delay_s")
        return self

    def retry_policy(self, *, sleep: Sleeper | None = None) -> RetryPolicy:
        """The retry policy these settings describe (sleep injectable for tests)."""
        policy = RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay_s=self.base_delay_s,
            max_delay_s=self.max_delay_s,
        )
        return policy if sleep is None else dataclasses.replace(policy, sleep=sleep)

    def new_call(
        self,
        system: str,
        user: str,
        output_schema: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> JudgeCall:
        """A JudgeCall carrying this configuration's sampling parameters and timeout."""
        return JudgeCall(
            system=system,
            user=user,
            output_schema=output_schema,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            timeout_s=self.timeout_s,
            metadata=dict(metadata or {}),
        )


def process_egress_policy() -> EgressPolicy:
    """The operator's egress policy from this process's settings (RS_OUTBOUND_*,
    RS_JUDGE_KEY_VARS)."""
    from app.core.config import get_settings

    return EgressPolicy.from_settings(get_settings())
