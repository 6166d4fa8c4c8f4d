"""Upstream tools the exports are checked with (nova-forge-sdk, trl, verl, openai): installed by
scripts/install_trainers.sh. A test that needs one is skipped when it is absent, unless
RS_REQUIRE_TRAINERS=1, where the missing package fails the test instead."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any

import pytest

REQUIRED = os.environ.get("RS_REQUIRE_TRAINERS") == "1"


def require(module: str) -> Any:
    """Import `module`, or skip (fail under RS_REQUIRE_TRAINERS=1) when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if REQUIRED:
            raise
        pytest.skip(f"{module} is not installed ({exc}); see scripts/install_trainers.sh")


def nova_reward_verifier() -> Any:
    """nova-forge-sdk's `verify_reward_function`, imported without the SDK's top-level package
    (which imports every SageMaker feature): only the verifier's own module chain is loaded."""
    if "amzn_nova_forge" not in sys.modules:
        spec = importlib.util.find_spec("amzn_nova_forge")
        if spec is None or spec.submodule_search_locations is None:
            require("amzn_nova_forge")  # skips, or raises the ImportError
            raise AssertionError("unreachable")
        package = types.ModuleType("amzn_nova_forge")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["amzn_nova_forge"] = package
    module = require("amzn_nova_forge.util.reward_verifier")
    return module.verify_reward_function
