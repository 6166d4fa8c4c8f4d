"""Tests for the deterministic legal demo data set (app.demo.legal)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app.demo import legal
from app.demo.legal import (
    COMMENT_DEFECTS,
    DEFECT_FLAGS_ACCEPTABLE,
    DEFECT_IRRELEVANT,
    DEFECT_NOT_IN_CONTRACT,
    DEFECT_QUOTES_PLAYBOOK,
    DEFECT_VAGUE_ACTION,
    DEFECT_WRONG_RULE,
    OUTPUT_SCHEMA,
    POLICY_SYSTEM_PROMPT,
    QUALITY_PROFILES,
    RESPONSE_DEFECTS,
    RESPONSE_EMPTY,
    RESPONSE_MALFORMED,
    RESPONSE_PROSE,
    STEPS,
    USER_PROMPT,
    VAGUE_ACTIONS,
    ClauseLabel,
    Contract,
    build_legal_demo,
    contract_slug,
    iter_jsonl_lines,
    load_contracts,
    load_playbook_text,
    parse_playbook,
    review_issues,
    write_jsonl,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DATA = Path("/work/shared/data")
STUDIO_KEYS = {
    "id",
    "input",
    "target_document",
    "references",
    "reference_answer",
    "response",
    "responses",
    "model",
    "checkpoint",
    "step",
    "group",
    "metadata",
}


@pytest.fixture(scope="module")
def dataset() -> legal.DemoDataset:
    return build_legal_demo()


@pytest.fixture(scope="module")
def playbook() -> str:
    return load_playbook_text()


def _squash(text: str) -> str:
    return " ".join(text.split())


def _parsed_comments(dataset: legal.DemoDataset) -> list[tuple[dict[str, Any], dict, list[str]]]:
    """(rollout, comment, defects) for every comment of every parseable response."""
    found = []
    for rollout in dataset.rollouts:
        if rollout["metadata"]["response_defect"] is not None:
            continue
        comments = json.loads(rollout["response"])
        for comment, defects in zip(comments, rollout["metadata"]["defects"], strict=True):
            found.append((rollout, comment, defects))
    return found


def _issue_by_excerpt(dataset: legal.DemoDataset) -> dict[str, dict[str, legal.ReviewIssue]]:
    rules = parse_playbook(load_playbook_text())
    return {
        contract.filename: {issue.excerpt: issue for issue in review_issues(contract, rules)}
        for contract in load_contracts()
    }


# --- determinism ------------------------------------------------------------------------------


def test_two_builds_are_identical(dataset: legal.DemoDataset) -> None:
    again = build_legal_demo()
    assert again == dataset
    assert list(iter_jsonl_lines(again)) == list(iter_jsonl_lines(dataset))


def test_build_does_not_depend_on_the_hash_seed(dataset: legal.DemoDataset) -> None:
    expected = hashlib.sha256("\n".join(iter_jsonl_lines(dataset)).encode()).hexdigest()
    script = (
        "import hashlib; from app.demo.legal import build_legal_demo, iter_jsonl_lines; "
        "print(hashlib.sha256('\\n'.join(iter_jsonl_lines(build_legal_demo())).encode())"
        ".hexdigest())"
    )
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == expected


# --- shape ------------------------------------------------------------------------------------


def test_uses_all_contracts_with_four_generations_grouped_by_slug(
    dataset: legal.DemoDataset,
) -> None:
    contracts = load_contracts()
    assert len(contracts) == 12
    assert len(dataset.rollouts) == 48
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rollout in dataset.rollouts:
        groups[rollout["group"]].append(rollout)
    assert set(groups) == {contract.slug for contract in contracts}
    by_slug = {contract.slug: contract for contract in contracts}
    for slug, members in groups.items():
        assert len(members) == 4
        assert {m["metadata"]["generation"] for m in members} == {0, 1, 2, 3}
        for member in members:
            assert member["target_document"] == by_slug[slug].text
            assert member["metadata"]["contract_file"] == by_slug[slug].filename
        # Generations of one contract come from different points of the training run.
        assert len({m["step"] for m in members}) >= 3
    assert len({r["id"] for r in dataset.rollouts}) == 48


def test_steps_span_the_training_run(dataset: legal.DemoDataset) -> None:
    steps = {rollout["step"] for rollout in dataset.rollouts}
    assert steps == set(STEPS)
    for rollout in dataset.rollouts:
        assert rollout["checkpoint"] == f"nova-lite-rft/step-{rollout['step']}"
        assert rollout["model"] == "nova-lite-rft"


def test_records_hold_only_studio_format_keys(dataset: legal.DemoDataset, playbook: str) -> None:
    for rollout in dataset.rollouts:
        assert set(rollout) <= STUDIO_KEYS, set(rollout) - STUDIO_KEYS
        assert isinstance(rollout["response"], str)
        assert "responses" not in rollout
        assert isinstance(rollout["step"], int) and rollout["step"] >= 0
        assert rollout["input"] == [
            {"role": "system", "content": POLICY_SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT},
        ]
        assert rollout["references"] == [
            {"title": "Commercial Contract Review Playbook", "text": playbook}
        ]
        metadata = rollout["metadata"]
        assert metadata["source"] == "CUAD v1 (CC BY 4.0)"
        assert metadata["quality_profile"] in QUALITY_PROFILES
        # The record survives a JSON round trip unchanged (no tuples, no non-JSON values).
        assert json.loads(json.dumps(rollout)) == rollout


def test_project_settings(dataset: legal.DemoDataset) -> None:
    jsonschema.Draft202012Validator.check_schema(dataset.output_schema)
    assert dataset.policy_system_prompt == POLICY_SYSTEM_PROMPT
    assert "CUAD" in dataset.attribution and "CC BY 4.0" in dataset.attribution
    assert dataset.project_name and dataset.project_description


# --- responses and their defects --------------------------------------------------------------


def test_parseable_responses_match_the_output_schema(dataset: legal.DemoDataset) -> None:
    validator = jsonschema.Draft202012Validator(OUTPUT_SCHEMA)
    parsed = 0
    for rollout in dataset.rollouts:
        if rollout["metadata"]["response_defect"] in (RESPONSE_MALFORMED, RESPONSE_PROSE):
            continue
        comments = json.loads(rollout["response"])
        validator.validate(comments)
        assert len(rollout["metadata"]["defects"]) == len(comments)
        parsed += 1
    assert parsed >= 40


def test_whole_response_defects(dataset: legal.DemoDataset) -> None:
    seen: dict[str, int] = defaultdict(int)
    for rollout in dataset.rollouts:
        defect = rollout["metadata"]["response_defect"]
        if defect is None:
            assert json.loads(rollout["response"]), "non-defective responses have comments"
            continue
        seen[defect] += 1
        assert rollout["metadata"]["quality_profile"] == defect
        assert rollout["metadata"]["defects"] == []
        if defect == RESPONSE_EMPTY:
            assert json.loads(rollout["response"]) == []
        else:
            with pytest.raises(json.JSONDecodeError):
                json.loads(rollout["response"])
        if defect == RESPONSE_MALFORMED:
            # Truncated JSON, not arbitrary text.
            assert rollout["response"].startswith("[\n  {")
    assert set(seen) == set(RESPONSE_DEFECTS)
    assert sum(seen.values()) <= 8  # "a few"


def test_every_comment_defect_kind_occurs(dataset: legal.DemoDataset) -> None:
    kinds = {kind for _, _, defects in _parsed_comments(dataset) for kind in defects}
    assert kinds == set(COMMENT_DEFECTS)
    clean = sum(1 for _, _, defects in _parsed_comments(dataset) if not defects)
    assert clean > len(_parsed_comments(dataset)) / 2


def test_well_grounded_comments_quote_the_contract_and_cite_the_right_rule(
    dataset: legal.DemoDataset,
) -> None:
    issues = _issue_by_excerpt(dataset)
    checked = 0
    for rollout, comment, defects in _parsed_comments(dataset):
        if defects:
            continue
        assert comment["text_excerpt"] in rollout["target_document"]
        issue = issues[rollout["metadata"]["contract_file"]][comment["text_excerpt"]]
        assert comment["rule"] == issue.rule_id
        assert not issue.acceptable
        assert comment["concern"] == issue.concern
        assert comment["recommended_action"] not in VAGUE_ACTIONS
        checked += 1
    assert checked >= 100


def test_not_in_contract_excerpts_do_not_occur_even_modulo_whitespace(
    dataset: legal.DemoDataset,
) -> None:
    checked = 0
    for rollout, comment, defects in _parsed_comments(dataset):
        if DEFECT_NOT_IN_CONTRACT in defects:
            excerpt = comment["text_excerpt"]
            assert excerpt not in rollout["target_document"]
            assert _squash(excerpt) not in _squash(rollout["target_document"])
            checked += 1
    assert checked >= 5


def test_playbook_quote_defects_quote_the_playbook(
    dataset: legal.DemoDataset, playbook: str
) -> None:
    checked = 0
    for rollout, comment, defects in _parsed_comments(dataset):
        quotes_playbook = comment["text_excerpt"] in playbook
        assert quotes_playbook == (DEFECT_QUOTES_PLAYBOOK in defects)
        if quotes_playbook:
            assert comment["text_excerpt"] not in rollout["target_document"]
            checked += 1
    assert checked >= 3


def test_rule_and_relevance_defects(dataset: legal.DemoDataset) -> None:
    issues = _issue_by_excerpt(dataset)
    for rollout, comment, defects in _parsed_comments(dataset):
        contract_issues = issues[rollout["metadata"]["contract_file"]]
        issue = contract_issues.get(comment["text_excerpt"])
        if DEFECT_WRONG_RULE in defects:
            assert issue is not None and comment["rule"] != issue.rule_id
        if DEFECT_FLAGS_ACCEPTABLE in defects:
            assert issue is not None and issue.acceptable
            assert comment["concern"] == issue.concern
        if DEFECT_IRRELEVANT in defects:
            # Contract text no playbook rule is about (title, parties, dates...).
            assert comment["text_excerpt"] in rollout["target_document"]
            assert issue is None


def test_vague_actions_are_exactly_the_recorded_ones(dataset: legal.DemoDataset) -> None:
    for _, comment, defects in _parsed_comments(dataset):
        assert (comment["recommended_action"] in VAGUE_ACTIONS) == (DEFECT_VAGUE_ACTION in defects)


def test_later_steps_tend_to_be_better(dataset: legal.DemoDataset) -> None:
    def clean_share(low: int, high: int) -> float:
        comments = [d for r, _, d in _parsed_comments(dataset) if low <= r["step"] <= high]
        return sum(1 for d in comments if not d) / len(comments)

    assert clean_share(400, 600) > clean_share(0, 200) + 0.1
    failures = [r["step"] for r in dataset.rollouts if r["metadata"]["response_defect"]]
    assert sum(1 for step in failures if step <= 200) > len(failures) / 2


# --- JSONL helpers ----------------------------------------------------------------------------


def test_write_jsonl_round_trips(dataset: legal.DemoDataset, tmp_path: Path) -> None:
    path = tmp_path / "legal.jsonl"
    assert write_jsonl(dataset, path) == 48
    raw = path.read_text(encoding="utf-8")
    assert raw.endswith("}\n")
    lines = raw.splitlines()
    assert lines == list(iter_jsonl_lines(dataset))
    assert [json.loads(line) for line in lines] == dataset.rollouts


def test_jsonl_helpers_accept_plain_records(tmp_path: Path) -> None:
    records = [{"input": [{"role": "user", "content": "é"}], "response": "ok"}]
    assert list(iter_jsonl_lines(records)) == [
        '{"input": [{"role": "user", "content": "é"}], "response": "ok"}'
    ]
    assert write_jsonl(records, tmp_path / "x.jsonl") == 1


# --- building blocks --------------------------------------------------------------------------


def test_parse_playbook_reads_all_rules_and_categories(playbook: str) -> None:
    rules = parse_playbook(playbook)
    assert [rule.rule_id for rule in rules] == [f"R{n}" for n in range(1, 15)]
    by_id = {rule.rule_id: rule for rule in rules}
    # Headers that wrap onto a second line keep every category.
    assert by_id["R9"].categories[-1] == "Irrevocable Or Perpetual License"
    assert "Volume Restriction" in by_id["R10"].categories
    assert by_id["R1"].action == (
        "propose Delaware law and courts; accept New York or England and Wales without escalation."
    )
    pattern = re.compile(OUTPUT_SCHEMA["items"]["properties"]["rule"]["pattern"])
    for rule in rules:
        assert pattern.match(rule.rule_id)
        assert rule.quotable
        assert all(quote in playbook and "\n" not in quote for quote in rule.quotable)


def test_every_playbook_category_has_comment_text(playbook: str) -> None:
    for rule in parse_playbook(playbook):
        for category in rule.categories:
            assert category in legal._CATEGORY_TEXT or category in legal._TERM_CATEGORIES


def test_contract_slugs_are_readable_and_unique() -> None:
    assert (
        contract_slug("AgapeAtpCorp_20191202_10-KA_EX-10.1_11911128_EX-10.1_Supply Agreement.txt")
        == "agapeatpcorp-supply-agreement"
    )
    assert (
        contract_slug(
            "ASHWORTHINC_01_29_1999-EX-10.(D)-PROMOTION AGREEMENT AND NANTZ COMMUNICATIONS, "
            "INC..txt"
        )
        == "ashworthinc-promotion-agreement"
    )
    slugs = [contract.slug for contract in load_contracts()]
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug) for slug in slugs)


def _contract(labels: dict[str, tuple[str, str]]) -> Contract:
    text = " ".join(span for span, _ in labels.values())
    clauses = {cat: ClauseLabel(spans=(span,), answer=ans) for cat, (span, ans) in labels.items()}
    return Contract(filename="x.txt", slug="x", text=text, clauses=clauses)


@pytest.mark.parametrize(
    ("category", "span", "answer", "acceptable"),
    [
        ("Governing Law", "governed by the laws of the State of Nevada.", "Nevada", False),
        ("Governing Law", "governed by the laws of the State of New York.", "New York", True),
        (
            "Renewal Term",
            "renewed for successive ten (10) year terms.",
            "successive 10 years",
            False,
        ),
        ("Renewal Term", "renewed for successive one (1) year terms.", "successive 1 year", True),
        (
            "Notice Period To Terminate Renewal",
            "unless notice is given 30 days before.",
            "30 days",
            False,
        ),
        (
            "Notice Period To Terminate Renewal",
            "unless notice is given 3 months before.",
            "3 months",
            True,
        ),
        ("Expiration Date", "This Agreement continues in perpetuity.", "perpetual", False),
    ],
)
def test_term_clauses_are_assessed_from_their_answers(
    category: str, span: str, answer: str, acceptable: bool, playbook: str
) -> None:
    (issue,) = review_issues(_contract({category: (span, answer)}), parse_playbook(playbook))
    assert issue.acceptable is acceptable
    assert issue.excerpt == span
    assert issue.rule_id == ("R1" if category == "Governing Law" else "R4")


def test_expiration_is_measured_from_the_effective_date(playbook: str) -> None:
    rules = parse_playbook(playbook)
    for end, acceptable in (("1/15/28", False), ("1/15/20", True)):
        contract = _contract(
            {
                "Effective Date": ("effective as of January 15, 2018", "1/15/18"),
                "Expiration Date": ("This agreement runs for the stated term.", end),
            }
        )
        (issue,) = review_issues(contract, rules)
        assert issue.category == "Expiration Date"
        assert issue.acceptable is acceptable


def test_long_spans_are_cut_to_a_verbatim_excerpt(playbook: str) -> None:
    long_clause = "Licensee shall not assign this Agreement. " + "word " * 120
    contract = _contract({"Anti-Assignment": (long_clause.strip(), "Yes")})
    (issue,) = review_issues(contract, parse_playbook(playbook))
    assert issue.excerpt in contract.text
    assert len(issue.excerpt) <= 320


# --- bundled data -----------------------------------------------------------------------------


def test_attribution_file_names_the_licences() -> None:
    text = (legal.DATA_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in text
    assert "The Atticus Project" in text and "EDGAR" in text
    assert "written for" in text and "MIT License" in text


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data folder not available")
@pytest.mark.parametrize(
    ("bundled", "original"),
    [
        ("cuad_sample_12.jsonl", "cuad/sample/cuad_sample_12.jsonl"),
        ("playbook.md", "contract-review/playbook.md"),
    ],
)
def test_bundled_copies_are_byte_identical(bundled: str, original: str) -> None:
    assert (legal.DATA_DIR / bundled).read_bytes() == (SHARED_DATA / original).read_bytes()
