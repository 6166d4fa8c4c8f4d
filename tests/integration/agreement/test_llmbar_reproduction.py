"""LLMBar's published statistics for GPT-4 on its processed MT-Bench set, reproduced through the
studio's own imports (rollouts, expert labels, external verdicts) and agreement service.

Every statistics.json value is checked. Accuracy per order, their mean, both-correct, "equal"
(positional agreement) and kappa_agreement (kappa between the orders) are the studio's figures
as they are. LLMBar's kappa_False / kappa_True are not Cohen's kappa against the labels: its
script maps the judge's "2" to 0 while the label keeps 2 (evaluate.py: ``int(o) if o in
("0", "1") else 0``), so a correct "2" never counts as agreement. The studio shows the standard
kappa (0.59 / 0.65 rather than 0.20 / 0.22 on Vanilla_NoRules); the test rebuilds LLMBar's
published number from the studio's stored verdicts with that mapping, to show where it comes from.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import cohen_kappa_score
from sqlmodel import Session

from app.agreement import pairs
from app.agreement import service as agreement_service
from app.agreement.pairwise import Outcome, PairItem
from app.core.config import Settings
from app.demo import calibration_data
from app.demo.loader import import_demo_rollouts
from app.judging import external
from app.labels import exchange
from app.rubrics.models import RubricVersion
from tests.support.factories import make_project, make_user, make_version

_DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
MT_BENCH = Path("llmbar") / "Dataset" / "Processed" / "MT-Bench"


@pytest.fixture(scope="module")
def folder() -> Path:
    path = Path(os.environ.get("RUBRIC_STUDIO_SHARED_DATA", _DEFAULT_DATA)) / MT_BENCH
    assert path.is_dir(), f"shared data not found at {path} (set RUBRIC_STUDIO_SHARED_DATA)"
    return path


def _count(text: str) -> tuple[int, int]:
    found = re.match(r"(\d+) / (\d+)", text)
    assert found is not None, text
    return int(found[1]), int(found[2])


def _percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def _jsonl(lines: Any) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def _llmbar_kappa(judge: list[Outcome | None], label: list[Outcome]) -> float:
    """LLMBar's published kappa_False/True: judge "1" -> 1, anything else -> 0; label 1 or 2."""
    return float(
        cohen_kappa_score(
            [1 if j == Outcome.A else 0 for j in judge],
            [1 if x == Outcome.A else 2 for x in label],
        )
    )


def test_statistics_json_reproduced_through_imports(
    session: Session, settings: Settings, folder: Path
) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "MT-Bench calibration")
    version = make_version(session, project, "pairwise_preference")
    items = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    import_demo_rollouts(
        session, settings, project, owner, calibration_data.rollout_records(items), "mt.jsonl"
    )
    labelled = exchange.import_labels(
        session,
        project,
        actor=owner,
        rubric_version_id=version.id or 0,
        text=_jsonl(calibration_data.label_lines(items)),
        fmt="jsonl",
    )
    assert labelled.created == 200 and not labelled.problems
    for strategy in calibration_data.STRATEGIES:
        evaluator = folder / "evaluators" / "GPT-4" / strategy
        results = json.loads((evaluator / "result.json").read_text(encoding="utf-8"))
        published = json.loads((evaluator / "statistics.json").read_text(encoding="utf-8"))
        lines = [json.dumps(v) for v in calibration_data.verdict_lines(results, strategy)]
        summary = external.import_verdicts(
            session,
            project,
            actor=owner,
            rubric_version_id=version.id or 0,
            stream=lines,
            filename=f"{strategy}.jsonl",
        )
        (run,) = summary.runs
        result = agreement_service.run_agreement(session, run)
        assert result.pairwise is not None
        f = result.pairwise.figures
        assert result.pairwise.n_pairs == 200

        for name, key in (("accuracy_ab", "correct_False"), ("accuracy_ba", "correct_True")):
            k, n = _count(published[key])
            assert (round(f[name].value * f[name].n), f[name].n) == (k, n), (strategy, name)
            assert f[name].value == pytest.approx(k / n, abs=1e-12)
        assert f["accuracy"].value == pytest.approx(_percent(published["correct_average"]))
        k, n = _count(published["correct_both"])
        assert (
            f["both_correct"].value == pytest.approx(k / n, abs=1e-12) and f["both_correct"].n == n
        )
        k, n = _count(published["equal"])
        assert f["positional_agreement"].value == pytest.approx(k / n, abs=1e-12)
        assert f["inconsistent_rate"].value == pytest.approx(1 - k / n, abs=1e-12)
        assert f["tie_rate"].value == 0
        assert f["kappa_between_orders"].value == pytest.approx(
            published["kappa_agreement"], abs=1e-12
        )

        # Standard Cohen's kappa per order, against scikit-learn on the same stored verdicts.
        stored: list[PairItem] = pairs.pair_items(
            session, run, session.get(RubricVersion, run.rubric_version_id)
        )
        truth = [item.experts[0] for item in stored]
        for name, side in (("kappa_ab", "ab"), ("kappa_ba", "ba")):
            judged = [getattr(item, side) for item in stored]
            assert f[name].value == pytest.approx(
                cohen_kappa_score([str(t) for t in truth], [str(j) for j in judged]), abs=1e-12
            )
        # LLMBar's published kappa_False / kappa_True / kappa_average, from the same verdicts.
        k_false = _llmbar_kappa([item.ab for item in stored], truth)
        k_true = _llmbar_kappa([item.ba for item in stored], truth)
        assert k_false == pytest.approx(published["kappa_False"], abs=1e-12)
        assert k_true == pytest.approx(published["kappa_True"], abs=1e-12)
        assert (k_false + k_true) / 2 == pytest.approx(published["kappa_average"], abs=1e-12)

        # Every figure carries a bootstrap interval around its value.
        for estimate in f.values():
            assert estimate.value is not None and estimate.ci_low is not None
            assert estimate.ci_low <= estimate.value + 1e-9 <= estimate.ci_high + 2e-9
