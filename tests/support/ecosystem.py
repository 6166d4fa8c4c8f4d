"""Upstream tools the exports are checked with (nova-forge-sdk, trl, verl, openai): installed by
scripts/install_trainers.sh. A test that needs one is skipped when it is absent, unless
RS_REQUIRE_TRAINERS=1, where the missing package fails the test instead."""

from __future__ import annotations

import importlib
import importlib.machinery
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


def import_without_package_inits(module: str) -> Any:
    """Import `module` from its installed files without running its parent packages'
    __init__ (which, for the SDKs here, import whole frameworks: SageMaker, Ray): each parent is
    registered as a bare package first. Skips like require() when it is not installed."""
    parts = module.split(".")
    for depth in range(1, len(parts)):
        name = ".".join(parts[:depth])
        if name in sys.modules:
            continue
        parent = sys.modules.get(".".join(parts[: depth - 1])) if depth > 1 else None
        if depth == 1:
            spec = importlib.util.find_spec(name)
            locations = spec.submodule_search_locations if spec else None
        else:
            locations = [os.path.join(path, parts[depth - 1]) for path in parent.__path__]
        if not locations:
            require(name)  # skips, or raises the ImportError
            raise AssertionError("unreachable")
        package = types.ModuleType(name)
        package.__path__ = list(locations)
        package.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        package.__spec__.submodule_search_locations = list(locations)
        sys.modules[name] = package
    return require(module)


def nova_reward_verifier() -> Any:
    """nova-forge-sdk's `verify_reward_function`, imported without the SDK's top-level package
    (which imports every SageMaker feature): only the verifier's own module chain is loaded."""
    return import_without_package_inits(
        "amzn_nova_forge.util.reward_verifier"
    ).verify_reward_function


def verl_load_extern_object() -> Any:
    """verl's `load_extern_object` (the loader of custom reward functions), without verl's
    package __init__ (which needs Ray and tensordict)."""
    return import_without_package_inits("verl.utils.import_utils").load_extern_object
