"""docs/api.md lists every JSON endpoint the app serves, so the docs stay true."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def test_every_api_endpoint_is_documented(app: FastAPI) -> None:
    text = DOC.read_text()
    missing = [
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if f"| {method.upper()} | `{path}` |" not in text
    ]
    assert missing == [], f"add these to docs/api.md: {missing}"
