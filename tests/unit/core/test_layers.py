"""The layer contracts (pyproject's [tool.importlinter]) hold, and they do catch a violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_the_app_keeps_its_layer_contracts() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_planted_violation_breaks_the_contracts(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # The hallway imports a room: core must never depend on a domain.
    (tmp_path / "app" / "core" / "planted.py").write_text("import app.judging.models\n")
    # Exported reward code reaches into the database layer.
    (tmp_path / "app" / "exports" / "package_runtime" / "planted.py").write_text(
        "import app.core.db\n"
    )
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "core and web are hallways: they import no domain BROKEN" in result.stdout
    assert "exported reward code is standalone" in result.stdout
    assert "app.core.planted -> app.judging.models" in result.stdout
