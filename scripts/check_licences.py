#!/usr/bin/env python3
"""Fail when a runtime dependency of Rubric Studio is copyleft (GPL or AGPL).

Reads [project.dependencies] from pyproject.toml, walks the installed distributions they
require (recursively, with their extras and environment markers, via importlib.metadata), and
classifies each one's licence from its License-Expression, License field or classifiers.

- GPL / AGPL (any version, not "Lesser"): fails. The app is Apache-2.0 and ships these packages.
- LGPL: reported, accepted. Python imports a package at run time without combining its source
  with ours, which the LGPL allows (psycopg is LGPL-3.0 and is used that way).
- An expression that offers a permissive choice ("MIT OR GPL-2.0") is accepted.
- Unknown licences are reported so a person can look; they do not fail the check.

Development dependencies (the [dev] extra) are not shipped and are not checked: the GPL
``krippendorff`` package is used there only to cross-check our own alpha in a test.

Usage: python scripts/check_licences.py [path/to/pyproject.toml]   (exit 1 on copyleft)
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

COPYLEFT = "copyleft"
WEAK = "weak copyleft (LGPL)"
PERMISSIVE = "permissive"
UNKNOWN = "unknown"

_LESSER = re.compile(r"\bLGPL|Lesser General Public|Library General Public", re.IGNORECASE)
_STRONG = re.compile(r"\bA?GPL|GNU General Public|Affero", re.IGNORECASE)
_PERMISSIVE = re.compile(
    r"\b(MIT|BSD|Apache|ISC|PSF|Python Software Foundation|MPL|Mozilla|0BSD|Zlib|CC0|"
    r"Unlicense|Public Domain|HPND|Dual License)",
    re.IGNORECASE,
)


def classify_text(text: str) -> str:
    """The kind of one licence text, expression or classifier."""
    if not text.strip():
        return UNKNOWN
    if " OR " in text:
        kinds = [classify_text(part) for part in re.split(r"\s+OR\s+", text.strip("() "))]
        for kind in (PERMISSIVE, WEAK, UNKNOWN, COPYLEFT):
            if kind in kinds:
                return kind
    if _LESSER.search(text):
        return WEAK
    if _STRONG.search(text):
        return COPYLEFT
    if _PERMISSIVE.search(text):
        return PERMISSIVE
    return UNKNOWN


def licence_of(dist: metadata.Distribution) -> tuple[str, str]:
    """(what the package declares, its kind); the expression wins over the older fields."""
    meta = dist.metadata
    expression = meta.get("License-Expression") or ""
    if expression:
        return expression, classify_text(expression)
    field = (meta.get("License") or "").strip().splitlines()
    first = field[0][:80] if field else ""
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    kinds = [classify_text(c) for c in classifiers]
    if first and classify_text(first) != UNKNOWN:
        kinds.append(classify_text(first))
    declared = "; ".join([first, *classifiers]) if first else "; ".join(classifiers)
    for kind in (COPYLEFT, WEAK, PERMISSIVE):
        if kind in kinds:
            return declared or "?", kind
    return declared or "?", UNKNOWN


@dataclass
class Package:
    name: str
    version: str
    declared: str
    kind: str
    required_by: str


def runtime_tree(requirements: list[str]) -> list[Package]:
    """Every installed distribution the requirements pull in, breadth first."""
    seen: dict[str, Package] = {}
    queue: list[tuple[Requirement, str, str]] = [(Requirement(r), "", "") for r in requirements]
    while queue:
        requirement, parent, parent_extra = queue.pop(0)
        environment = {**default_environment(), "extra": parent_extra}
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        key = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            if key not in seen:
                seen[key] = Package(requirement.name, "-", "not installed", UNKNOWN, parent)
            continue
        first_visit = key not in seen
        if first_visit:
            declared, kind = licence_of(dist)
            seen[key] = Package(dist.metadata["Name"], dist.version, declared, kind, parent)
        for extra in (
            ["", *sorted(requirement.extras)] if first_visit else sorted(requirement.extras)
        ):
            for child in dist.requires or []:
                queue.append((Requirement(child), dist.metadata["Name"], extra))
    return sorted(seen.values(), key=lambda p: p.name.lower())


def main(argv: list[str]) -> int:
    pyproject = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[1] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    packages = runtime_tree(list(project.get("dependencies", [])))
    width = max(len(p.name) for p in packages)
    for package in packages:
        print(
            f"{package.name:<{width}}  {package.version:<12} {package.kind:<22} {package.declared}"
        )
    copyleft = [p for p in packages if p.kind == COPYLEFT]
    weak = [p for p in packages if p.kind == WEAK]
    unknown = [p for p in packages if p.kind == UNKNOWN]
    print(f"\n{len(packages)} runtime packages checked.")
    if weak:
        print(
            "LGPL (accepted: imported at run time, not combined): "
            + ", ".join(p.name for p in weak)
        )
    if unknown:
        print("Licence not recognised, please look: " + ", ".join(p.name for p in unknown))
    if copyleft:
        for p in copyleft:
            print(
                f"COPYLEFT runtime dependency: {p.name} {p.version} ({p.declared}), "
                f"required by {p.required_by or 'pyproject.toml'}",
                file=sys.stderr,
            )
        return 1
    print("No GPL or AGPL runtime dependency.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
