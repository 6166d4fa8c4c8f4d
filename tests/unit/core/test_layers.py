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
    # The judge's pure module reaches the executor; a service reaches into the worker.
    with (tmp_path / "app" / "judging" / "verdicts.py").open("a") as pure:
        pure.write("\nimport sqlalchemy  # planted\n")
    (tmp_path / "app" / "exports" / "service.py").write_text(
        (ROOT / "app" / "exports" / "service.py").read_text() + "\nimport app.judging.storage\n"
    )
    # A cycle inside a package: the LLM configuration imports the providers it configures.
    with (tmp_path / "app" / "llm" / "config.py").open("a") as config:
        config.write("\nfrom app.llm import providers  # planted\n")
    # A domain command imports the top-level command line that loads it.
    with (tmp_path / "app" / "judging" / "cli.py").open("a") as cli:
        cli.write("\nimport app.cli  # planted\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())  # long contract names wrap
    assert "pure modules touch no database and no web BROKEN" in out
    assert "reach the judge executor only through its pure module BROKEN" in out
    assert "no import cycles between the modules of a package BROKEN" in out
    assert "never import the top-level command line (it loads them lazily) BROKEN" in out
    assert "core and web are hallways: they import no domain BROKEN" in result.stdout
    assert "exported reward code is standalone" in result.stdout
    assert "app.core.planted -> app.judging.models" in result.stdout
