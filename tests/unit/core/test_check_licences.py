"""The licence check: runs on the installed runtime tree and passes; GPL and AGPL are caught,
LGPL is reported, a permissive alternative in an OR expression is accepted."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "check_licences.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_licences", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("GPL-3.0-or-later", "copyleft"),
        ("GNU General Public License v3 (GPLv3)", "copyleft"),
        ("AGPL-3.0-only", "copyleft"),
        ("GNU Affero General Public License v3", "copyleft"),
        ("LGPL-3.0-only", "weak copyleft (LGPL)"),
        ("GNU Lesser General Public License v3 (LGPLv3)", "weak copyleft (LGPL)"),
        ("MIT OR GPL-2.0", "permissive"),
        ("Apache-2.0 AND MIT", "permissive"),
        ("BSD-3-Clause", "permissive"),
        ("", "unknown"),
    ],
)
def test_classification(text: str, kind: str) -> None:
    assert _module().classify_text(text) == kind


def test_the_runtime_tree_has_no_copyleft_package() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No GPL or AGPL runtime dependency." in result.stdout
    # The GPL alpha package is a test-only cross-check, never in the runtime tree.
    assert "krippendorff" not in result.stdout.lower()


def test_a_gpl_runtime_dependency_fails(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["krippendorff>=0.8"]\n')
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(pyproject)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "COPYLEFT runtime dependency: krippendorff" in result.stderr
