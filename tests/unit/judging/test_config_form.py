"""The judge-configuration form model: blank fields take the defaults, problems name fields."""

from __future__ import annotations

import pytest

from app.core.errors import InvalidInput
from app.judging.schemas import JudgeConfigForm, JudgeConfigUpdateForm


def test_blank_fields_take_the_defaults() -> None:
    data = JudgeConfigForm(
        name=" local judge ", provider="openai_compat", model_id="m", base_url="http://x/v1"
    ).to_input()
    assert data.name == "local judge"
    assert data.max_tokens == 1024 and data.structured_output == "auto"
    assert data.api_key_env is None


def test_typed_numbers_are_checked_and_named() -> None:
    form = JudgeConfigForm(
        name="j", provider="openai_compat", model_id="m", base_url="http://x/v1", temperature="9"
    )
    with pytest.raises(InvalidInput) as caught:
        form.to_input()
    assert "temperature" in str(caught.value.details or caught.value.message).lower()


def test_the_edit_form_carries_its_revision() -> None:
    form = JudgeConfigUpdateForm(name="j", provider="bedrock", model_id="m", revision=3)
    assert form.revision == 3
    assert "revision" not in form.to_input().model_dump()
