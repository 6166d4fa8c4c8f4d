"""Agreement figures on the page equal scikit-learn / SciPy on randomly generated label sets,
for pass/fail and 1-5 criteria and the overall verdict; undefined figures read "not defined";
two runs compared list exactly the flipped items; preference agreement follows MT-Bench."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from scipy.stats import norm, spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix, mean_absolute_error
from sqlmodel import Session

from app.labels import gold
from app.rubrics.builtin import BUILTIN_TEMPLATES
from app.rubrics.definition import Criterion, Level, RubricDefinition
from tests.support.factories import (
    add_label,
    boolean_answer,
    make_pair_run,
    make_pairs,
    make_project,
    make_rollouts,
    make_run,
    make_user,
    make_version,
)
from tests.support.web import find_all, login

PASS_FAIL = BUILTIN_TEMPLATES["generic_pass_fail"]
KEYS = [c.key for c in PASS_FAIL.criteria]
WEIGHTS = {c.key: c.weight for c in PASS_FAIL.criteria}
LEVELS = [1, 2, 3, 4, 5]
SCALES = RubricDefinition(
    mode="rubric",
    title="Two scales",
    criteria=[
        Criterion(
            key=key,
            name=key,
            type="scale",
            levels=[Level(value=v, description=f"level {v}") for v in LEVELS],
        )
        for key in ("Accuracy", "Style")
    ],
)


@pytest.fixture
def people(session: Session):
    owner = make_user(session, "owner@example.com")
    experts = [make_user(session, f"expert{i}@example.com") for i in range(3)]
    project = make_project(session, owner, "Agreement", members=[(e, "expert") for e in experts])
    return {"owner": owner, "experts": experts, "project": project}


# ---- reading the page -------------------------------------------------------------------------


def _figure(html: str, testid: str) -> dict[str, Any]:
    found = find_all(html, "data-testid", testid)
    assert len(found) == 1, f"{testid}: {len(found)} elements"
    return found[0]


def _value(html: str, testid: str) -> float | None:
    element = _figure(html, testid)
    if element.get("data-defined") == "false":
        text = html.split(f'data-testid="{testid}" data-defined="false">')[1].split("<")[0]
        assert text.startswith("not defined"), text
        return None
    return float(str(element["data-value"]))


def _wilson(k: int, n: int) -> tuple[float, float]:
    z = norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _check_proportion(html: str, testid: str, hits: int, n: int) -> None:
    if n == 0:
        assert _value(html, testid) is None
        return
    element = _figure(html, testid)
    assert (int(element["data-k"]), int(element["data-n"])) == (hits, n)
    assert float(element["data-value"]) == pytest.approx(hits / n)
    low, high = _wilson(hits, n)
    assert float(element["data-ci-low"]) == pytest.approx(low, abs=1e-9)
    assert float(element["data-ci-high"]) == pytest.approx(high, abs=1e-9)


def _kappa(human: Sequence[Any], judge: Sequence[Any], **kwargs: Any) -> float | None:
    if not human:
        return None
    value = cohen_kappa_score(human, judge, **kwargs)
    return None if math.isnan(value) else float(value)


def _check_binary(html: str, prefix: str, judge: list[bool], human: list[bool]) -> None:
    n = len(judge)
    _check_proportion(
        html, f"{prefix}-agreement", sum(j == h for j, h in zip(judge, human, strict=True)), n
    )
    expected_kappa = (
        _kappa(human, judge, labels=[False, True]) if len(set(human + judge)) > 1 else None
    )
    actual = _value(html, f"{prefix}-kappa")
    assert (actual is None) == (expected_kappa is None)
    if expected_kappa is not None:
        assert actual == pytest.approx(expected_kappa)
    fails = [j for j, h in zip(judge, human, strict=True) if not h]
    passes = [j for j, h in zip(judge, human, strict=True) if h]
    # "fail" is the positive class: TPR = failures the judge caught too.
    _check_proportion(html, f"{prefix}-tpr", sum(not j for j in fails), len(fails))
    _check_proportion(html, f"{prefix}-tnr", sum(passes), len(passes))


def _check_confusion(
    html: str, prefix: str, judge: list[Any], human: list[Any], labels: list[Any], names: list[str]
) -> None:
    matrix = (
        confusion_matrix(human, judge, labels=labels)
        if human
        else [[0] * len(labels)] * len(labels)
    )
    for i, row in enumerate(names):
        for j, col in enumerate(names):
            cell = _figure(html, f"{prefix}-{row}-{col}")
            assert int(cell["data-count"]) == int(matrix[i][j])


# ---- pass/fail criteria -----------------------------------------------------------------------


def _normalized(values: dict[str, bool]) -> float:
    if not values["Safe"]:
        return 0.0  # Safe is a hard fail
    return sum(WEIGHTS[k] * values[k] for k in KEYS) / sum(WEIGHTS.values())


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pass_fail_figures_equal_sklearn(
    client: TestClient, session: Session, people, seed: int
) -> None:
    rng = random.Random(seed)
    project, experts = people["project"], people["experts"]
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 24)
    judge: dict[int, dict[str, bool] | None] = {}
    for rollout in rollouts:
        judge[rollout.id] = None if rng.random() < 0.1 else {k: rng.random() < 0.6 for k in KEYS}
    run = make_run(
        session,
        project,
        version,
        {r: boolean_answer(version.definition, v) if v else None for r, v in judge.items()},
    )
    labels: list[tuple[int, dict[str, bool]]] = []
    for rollout in rollouts:
        for expert in rng.sample(experts, rng.randint(0, 3)):
            values = {k: rng.random() < 0.6 for k in KEYS}
            add_label(session, project, version, rollout, expert, values)
            labels.append((rollout.id, values))
    login(client, experts[0].email)
    html = client.get(f"/projects/{project.id}/agreement/runs/{run.id}").text
    assert "Positive class: fail" in html
    usable = [(judge[r], values) for r, values in labels if judge[r] is not None]
    for key in KEYS:
        j = [v[key] for v, _ in usable]
        h = [values[key] for _, values in usable]
        assert int(_figure(html, f"fig-{key}-n")["data-value"]) == len(j)
        _check_binary(html, f"fig-{key}", j, h)
        _check_confusion(html, f"cm-{key}", j, h, [False, True], ["fail", "pass"])
    # Overall: pass when the normalised score (weights, hard fail) is 0.5 or more.
    j = [_normalized(v) >= 0.5 for v, _ in usable]
    h = [_normalized(values) >= 0.5 for _, values in usable]
    _check_binary(html, "fig-_overall", j, h)

    # The API gives the same numbers.
    api = client.get(f"/api/v1/projects/{project.id}/runs/{run.id}/agreement").json()
    assert api["positive_class"] == "fail"
    by_key = {c["key"]: c for c in api["criteria"]}
    for key in KEYS:
        assert by_key[key]["figures"]["agreement"]["value"] == _value(html, f"fig-{key}-agreement")


# ---- 1-5 scales -------------------------------------------------------------------------------


def _scale_answer(values: dict[str, int]) -> dict[str, Any]:
    return {
        "criteria": {
            k: {"evidence": "e", "justification": "j", "score": v} for k, v in values.items()
        },
        "aggregate_score": 0,
    }


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_scale_figures_equal_sklearn_and_scipy(
    client: TestClient, session: Session, people, seed: int
) -> None:
    rng = random.Random(seed)
    project, experts = people["project"], people["experts"]
    version = make_version(session, project, definition=SCALES)
    rollouts = make_rollouts(session, project, 30)
    judge = {r.id: {k: rng.randint(1, 5) for k in ("Accuracy", "Style")} for r in rollouts}
    run = make_run(session, project, version, {r: _scale_answer(v) for r, v in judge.items()})
    labels = []
    for rollout in rollouts:
        for expert in rng.sample(experts, rng.randint(0, 2)):
            # Experts roughly agree with the judge, so correlations are meaningful.
            values = {
                k: min(5, max(1, judge[rollout.id][k] + rng.choice([-1, 0, 0, 1, 2])))
                for k in ("Accuracy", "Style")
            }
            add_label(session, project, version, rollout, expert, values)
            labels.append((rollout.id, values))
    login(client, experts[0].email)
    html = client.get(f"/projects/{project.id}/agreement/runs/{run.id}").text
    for key in ("Accuracy", "Style"):
        j = [judge[r][key] for r, _ in labels]
        h = [values[key] for _, values in labels]
        n = len(j)
        _check_proportion(
            html, f"fig-{key}-exact", sum(a == b for a, b in zip(j, h, strict=True)), n
        )
        _check_proportion(
            html,
            f"fig-{key}-within_one",
            sum(abs(a - b) <= 1 for a, b in zip(j, h, strict=True)),
            n,
        )
        assert _value(html, f"fig-{key}-spearman") == pytest.approx(spearmanr(j, h).statistic)
        assert _value(html, f"fig-{key}-mae") == pytest.approx(mean_absolute_error(h, j))
        assert _value(html, f"fig-{key}-qwk") == pytest.approx(
            cohen_kappa_score(h, j, labels=LEVELS, weights="quadratic")
        )
        assert _value(html, f"fig-{key}-kappa") == pytest.approx(
            cohen_kappa_score(h, j, labels=LEVELS)
        )
        _check_confusion(html, f"cm-{key}", j, h, LEVELS, [str(v) for v in LEVELS])
        _check_binary(html, f"fig-{key}-binary", [v >= 3 for v in j], [v >= 3 for v in h])

    # Overall: the mean of the two levels, rounded half up, compared as a 1-5 level.
    def overall(values: dict[str, int]) -> int:
        return math.floor((values["Accuracy"] + values["Style"]) / 2 + 0.5)

    j = [overall(judge[r]) for r, _ in labels]
    h = [overall(values) for _, values in labels]
    assert _value(html, "fig-_overall-mae") == pytest.approx(mean_absolute_error(h, j))
    assert _value(html, "fig-_overall-qwk") == pytest.approx(
        cohen_kappa_score(h, j, labels=LEVELS, weights="quadratic")
    )


# ---- edge cases -------------------------------------------------------------------------------


def test_single_class_and_no_overlap_read_not_defined(
    client: TestClient, session: Session, people
) -> None:
    project, experts = people["project"], people["experts"]
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 6)
    everything_passes = {k: True for k in KEYS}
    run = make_run(
        session,
        project,
        version,
        {r.id: boolean_answer(version.definition, everything_passes) for r in rollouts},
    )
    for rollout in rollouts[:4]:
        add_label(session, project, version, rollout, experts[0], everything_passes)
    login(client, experts[0].email)
    response = client.get(f"/projects/{project.id}/agreement/runs/{run.id}")
    assert response.status_code == 200
    html = response.text
    assert _value(html, "fig-Safe-agreement") == 1.0
    assert _value(html, "fig-Safe-kappa") is None  # one class: kappa is undefined
    assert _value(html, "fig-Safe-tpr") is None  # nobody failed anything
    assert "not defined: no items the human marked fail" in html

    # A run over rollouts nobody labelled: no overlap at all.
    others = make_rollouts(session, project, 3, prefix="other")
    lonely = make_run(
        session,
        project,
        version,
        {r.id: boolean_answer(version.definition, everything_passes) for r in others},
    )
    response = client.get(f"/projects/{project.id}/agreement/runs/{lonely.id}")
    assert response.status_code == 200
    html = response.text
    assert int(_figure(html, "fig-Safe-n")["data-value"]) == 0
    for testid in (
        "fig-Safe-agreement",
        "fig-Safe-kappa",
        "fig-Safe-tpr",
        "fig-_overall-agreement",
    ):
        assert _value(html, testid) is None
    api = client.get(f"/api/v1/projects/{project.id}/runs/{lonely.id}/agreement")
    assert api.status_code == 200
    assert api.json()["criteria"][0]["figures"]["agreement"]["value"] is None
    # Scale edge cases: constant scores have no Spearman correlation.
    scales = make_version(session, project, definition=SCALES)
    run = make_run(
        session,
        project,
        scales,
        {r.id: _scale_answer({"Accuracy": 3, "Style": 3}) for r in rollouts},
    )
    for rollout in rollouts:
        add_label(session, project, scales, rollout, experts[1], {"Accuracy": 3, "Style": 4})
    html = client.get(f"/projects/{project.id}/agreement/runs/{run.id}").text
    assert _value(html, "fig-Accuracy-spearman") is None
    assert _value(html, "fig-Accuracy-exact") == 1.0
    assert _value(html, "fig-Style-mae") == pytest.approx(1.0)


# ---- two runs compared ------------------------------------------------------------------------


def test_compare_two_runs_on_gold_items(client: TestClient, session: Session, people) -> None:
    rng = random.Random(11)
    project, experts = people["project"], people["experts"]
    v1 = make_version(session, project, "generic_pass_fail")
    from app.rubrics.models import Rubric

    v2 = make_version(session, project, rubric=session.get(Rubric, v1.rubric_id))
    rollouts = make_rollouts(session, project, 20)
    old = {r.id: {k: rng.random() < 0.5 for k in KEYS} for r in rollouts}
    new = {
        r: {k: (not v) if rng.random() < 0.3 else v for k, v in values.items()}
        for r, values in old.items()
    }
    run_old = make_run(
        session, project, v1, {r: boolean_answer(v1.definition, v) for r, v in old.items()}
    )
    run_new = make_run(
        session, project, v2, {r: boolean_answer(v2.definition, v) for r, v in new.items()}
    )
    human = {}
    for rollout in rollouts[:14]:
        human[rollout.id] = {k: rng.random() < 0.5 for k in KEYS}
        add_label(session, project, v1, rollout, experts[0], human[rollout.id])
    gold_ids = [r.id for r in rollouts[:10]]
    gold.add_gold(session, project, actor=experts[0], rollout_ids=gold_ids, split="test")
    login(client, experts[0].email)
    html = client.get(
        f"/projects/{project.id}/agreement/compare?old={run_old.id}&new={run_new.id}&scope=gold_test"
    ).text
    assert int(html.split('data-testid="compared-items">')[1].split("<")[0]) == 10
    for key in KEYS:
        flipped = {
            int(e["data-rollout-id"])
            for e in find_all(
                html.split(f'data-testid="compare-{key}"')[1].split("</section>")[0],
                "data-testid",
                "flip",
            )
        }
        assert flipped == {r for r in gold_ids if old[r][key] != new[r][key]}
        before = sum(old[r][key] == human[r][key] for r in gold_ids) / 10
        after = sum(new[r][key] == human[r][key] for r in gold_ids) / 10
        row = _figure(html, f"change-{key}-agreement")
        assert float(row["data-old"]) == pytest.approx(before)
        assert float(row["data-new"]) == pytest.approx(after)
        assert float(row["data-delta"]) == pytest.approx(after - before)
    api = client.get(
        f"/api/v1/projects/{project.id}/agreement/compare",
        params={"old_run_id": run_old.id, "new_run_id": run_new.id, "scope": "all"},
    )
    assert api.status_code == 200
    # "all" is every labelled item both runs judged (14 of the 20): unlabelled items are not read.
    assert api.json()["items"] == 14
    bad = client.get(f"/projects/{project.id}/agreement/compare?old={run_old.id}&new={run_old.id}")
    assert bad.status_code == 422 and "two different runs" in bad.text


# ---- preference -------------------------------------------------------------------------------


def test_preference_agreement_follows_mt_bench(
    client: TestClient, session: Session, people
) -> None:
    rng = random.Random(3)
    project, experts = people["project"], people["experts"]
    version = make_version(session, project, "pairwise_preference")
    rollouts = make_rollouts(session, project, 24)
    pairs = make_pairs(session, project, rollouts)
    by_id = {p.id: p for p in pairs}
    shown = {
        p.id: (rng.choice("AB") if rng.random() < 0.9 else "tie", rng.choice("AB")) for p in pairs
    }
    run = make_pair_run(session, project, version, shown, by_id)

    def judge_winner(ab: str, ba: str) -> str:
        # Positional answers; BA's "A" is the pair's B. Different answers make a tie.
        second = {"A": "B", "B": "A", "tie": "tie"}[ba]
        return ab if ab == second else "tie"

    votes = []
    for pair in pairs:
        for expert in rng.sample(experts, rng.randint(0, 3)):
            preference = rng.choice(["A", "B", "B", "tie"])
            add_label(
                session, project, version, rollouts[0], expert, preference=preference, pair=pair
            )
            votes.append((pair.id, expert.id, preference))
    login(client, experts[0].email)
    html = client.get(f"/projects/{project.id}/agreement/runs/{run.id}").text
    compared = [(judge_winner(*shown[p]), v) for p, _, v in votes]
    _check_proportion(html, "fig-pref-with_ties", sum(j == h for j, h in compared), len(compared))
    tie_free = [(j, h) for j, h in compared if "tie" not in (j, h)]
    _check_proportion(
        html, "fig-pref-without_ties", sum(j == h for j, h in tie_free), len(tie_free)
    )
    expert_pairs = []
    for pair_id in by_id:
        mine = [(e, v) for p, e, v in votes if p == pair_id]
        expert_pairs += [(a[1], b[1]) for i, a in enumerate(mine) for b in mine[i + 1 :]]
    _check_proportion(
        html, "fig-pref-hh-with_ties", sum(a == b for a, b in expert_pairs), len(expert_pairs)
    )
    assert "MT-Bench" in html
    other = make_pair_run(session, project, version, {p: ("A", "A") for p in by_id}, by_id)
    compared = client.get(
        f"/projects/{project.id}/agreement/compare?old={run.id}&new={other.id}&scope=all"
    )
    assert compared.status_code == 200
    flipped = {int(e["data-rollout-id"]) for e in find_all(compared.text, "data-testid", "flip")}
    assert flipped == {by_id[p].rollout_a_id for p in by_id if judge_winner(*shown[p]) != "tie"}
