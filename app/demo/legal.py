"""Deterministic demo data set for the reference case: AI review comments on CUAD contracts.

The comments are synthetic (built from CUAD's lawyer-labelled clauses and the demo playbook), with
realistic defects injected per generation and recorded in each rollout's metadata as ground truth.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

DATA_DIR = Path(__file__).parent / "data"
CONTRACTS_FILE = DATA_DIR / "cuad_sample_12.jsonl"
PLAYBOOK_FILE = DATA_DIR / "playbook.md"

SEED = "rubric-studio/legal-demo/v1"
MODEL_NAME = "nova-lite-rft"
SOURCE = "CUAD v1 (CC BY 4.0)"
PLAYBOOK_TITLE = "Commercial Contract Review Playbook"
USER_PROMPT = "Review this contract against the playbook and return your comments as JSON"
GENERATIONS_PER_CONTRACT = 4
STEPS: tuple[int, ...] = (0, 100, 200, 300, 400, 500, 600)
COMMENT_TYPES: tuple[str, ...] = ("deviation", "risk", "clarification")

# Per-comment defects (metadata["defects"][i] lists the codes of comment i; [] = well grounded).
DEFECT_NOT_IN_CONTRACT = "excerpt_not_in_contract"
DEFECT_QUOTES_PLAYBOOK = "quotes_playbook"
DEFECT_WRONG_RULE = "wrong_rule"
DEFECT_IRRELEVANT = "irrelevant_concern"
DEFECT_FLAGS_ACCEPTABLE = "flags_acceptable_term"
DEFECT_VAGUE_ACTION = "vague_action"
COMMENT_DEFECTS: dict[str, str] = {
    DEFECT_NOT_IN_CONTRACT: "the excerpt is a paraphrased or altered quote that does not occur "
    "in the contract",
    DEFECT_QUOTES_PLAYBOOK: "the excerpt quotes the playbook instead of the contract",
    DEFECT_WRONG_RULE: "the comment cites a playbook rule that does not govern the clause",
    DEFECT_IRRELEVANT: "the concern has nothing to do with the quoted contract text",
    DEFECT_FLAGS_ACCEPTABLE: "the comment flags a term the playbook accepts",
    DEFECT_VAGUE_ACTION: "the recommended action is vague",
}

# Whole-response defects (metadata["response_defect"]; None when the response is a JSON list).
RESPONSE_EMPTY = "empty_list"
RESPONSE_MALFORMED = "malformed_json"
RESPONSE_PROSE = "prose"
RESPONSE_DEFECTS: dict[str, str] = {
    RESPONSE_EMPTY: "the response is an empty JSON list although the contract has flagged terms",
    RESPONSE_MALFORMED: "the response is truncated JSON that does not parse",
    RESPONSE_PROSE: "the response is prose instead of JSON",
}

# metadata["quality_profile"]: how good the generation was meant to be.
PROFILE_STRONG = "strong"
PROFILE_MIXED = "mixed"
PROFILE_WEAK = "weak"
QUALITY_PROFILES: tuple[str, ...] = (
    PROFILE_STRONG,
    PROFILE_MIXED,
    PROFILE_WEAK,
    RESPONSE_EMPTY,
    RESPONSE_MALFORMED,
    RESPONSE_PROSE,
)

VAGUE_ACTIONS: tuple[str, ...] = (
    "Review this clause.",
    "Consider revising this provision.",
    "Discuss with the counterparty.",
    "Check this with the legal team.",
    "Needs further attention.",
)

POLICY_SYSTEM_PROMPT = """\
You are a contract review assistant for an in-house legal team. Review the contract (the target \
document) against the team's Commercial Contract Review Playbook (the reference).

Return only a JSON array of review comments, with no text around it. Each comment is an object with:
- "text_excerpt": the exact contract language at issue, copied verbatim from the contract (never \
from the playbook);
- "rule": the playbook rule the comment concerns, e.g. "R2";
- "comment_type": "deviation" (a term departs from a playbook threshold), "risk" (an exposure the \
playbook flags) or "clarification" (a term that must be confirmed or narrowed);
- "concern": one or two sentences on why the clause is a problem under that rule;
- "recommended_action": one concrete action.

Flag only terms the playbook flags; do not comment on acceptable terms. If nothing needs flagging, \
return [].
"""

OUTPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Contract review comments",
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["text_excerpt", "rule", "comment_type", "concern", "recommended_action"],
        "properties": {
            "text_excerpt": {
                "type": "string",
                "minLength": 1,
                "description": "Exact contract language at issue, copied from the contract.",
            },
            "rule": {
                "type": "string",
                "pattern": "^R(1[0-4]|[1-9])$",
                "description": "Playbook rule, R1 to R14.",
            },
            "comment_type": {"type": "string", "enum": list(COMMENT_TYPES)},
            "concern": {"type": "string", "minLength": 1},
            "recommended_action": {"type": "string", "minLength": 1},
        },
    },
}

PROJECT_NAME = "Contract review (CUAD demo)"
PROJECT_DESCRIPTION = (
    "Automated review of commercial contracts against an in-house playbook, the reference case. "
    "Each rollout is one generation of nova-lite-rft's review comments on one of 12 real contracts "
    "(CUAD v1), sampled across an RFT training run from step 0 to 600. The comments are synthetic "
    "demo data with known defects, not the output of a real model."
)
ATTRIBUTION = (
    "Contracts and clause labels: CUAD v1 © The Atticus Project, CC BY 4.0 (public SEC EDGAR "
    "filings). Playbook written for Rubric Studio. Model comments are synthetic demo data."
)

T = TypeVar("T")


@dataclass(frozen=True)
class PlaybookRule:
    """One rule of the playbook: its id, title, CUAD categories and single-line quotable texts."""

    rule_id: str
    title: str
    categories: tuple[str, ...]
    action: str
    quotable: tuple[str, ...]  # single-line field texts, each a verbatim substring of the playbook


@dataclass(frozen=True)
class ClauseLabel:
    """CUAD's label for one category in one contract: exact spans and the normalised answer."""

    spans: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Contract:
    """One CUAD contract from the bundled sample."""

    filename: str
    slug: str
    text: str
    clauses: dict[str, ClauseLabel]


@dataclass
class DemoDataset:
    """A demo project's settings plus its rollouts in the studio JSONL format."""

    project_name: str
    project_description: str
    policy_system_prompt: str
    output_schema: dict[str, Any]
    attribution: str
    rollouts: list[dict[str, Any]]


@dataclass(frozen=True)
class ReviewIssue:
    """A reviewable clause: a verbatim contract excerpt and what a good comment on it says."""

    category: str
    rule_id: str
    excerpt: str
    position: int
    comment_type: str
    concern: str
    action: str
    acceptable: bool  # True: the playbook accepts the term, so `concern` is a false flag


class _Rng:
    """Seeded randomness built only on random.random(), whose sequence Python keeps stable.

    A str seed is hashed with SHA-512 by random.seed (version 2), so it does not depend on
    PYTHONHASHSEED; choice/shuffle/randint are reimplemented because their algorithms may change.
    """

    def __init__(self, *key: object) -> None:
        self._random = random.Random(":".join(str(part) for part in (SEED, *key)))

    def random(self) -> float:
        return self._random.random()

    def randint(self, low: int, high: int) -> int:
        return low + min(int(self.random() * (high - low + 1)), high - low)

    def choice(self, items: Sequence[T]) -> T:
        return items[self.randint(0, len(items) - 1)]

    def shuffled(self, items: Iterable[T]) -> list[T]:
        result = list(items)
        for i in range(len(result) - 1, 0, -1):
            j = self.randint(0, i)
            result[i], result[j] = result[j], result[i]
        return result

    def weighted(self, options: Sequence[tuple[T, float]]) -> T:
        point = self.random() * sum(weight for _, weight in options)
        for value, weight in options:
            point -= weight
            if point < 0:
                return value
        return options[-1][0]


# ---------------------------------------------------------------------------------------------
# Loading the bundled material


def load_playbook_text() -> str:
    """The demo playbook (markdown), as shipped in app/demo/data."""
    return PLAYBOOK_FILE.read_text(encoding="utf-8")


_RULE_HEADER = re.compile(r"^## (R\d+) ([^(\n]+?) \(([^()]*)\)[ \t]*$", re.MULTILINE)
_FIELD = re.compile(r"^(Acceptable|Flag|Action): (.*)$")


def parse_playbook(text: str) -> list[PlaybookRule]:
    """The playbook's rules, with the CUAD categories each header lists in parentheses."""
    headers = list(_RULE_HEADER.finditer(text))
    rules: list[PlaybookRule] = []
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = text[header.end() : end].split("\n## ", 1)[0]
        fields: list[tuple[str, list[str]]] = []
        for line in body.strip().splitlines():
            match = _FIELD.match(line)
            if match:
                fields.append((match.group(1), [match.group(2).strip()]))
            elif fields and line.strip():
                fields[-1][1].append(line.strip())
        action = " ".join(next(lines for name, lines in fields if name == "Action"))
        categories = tuple(c.strip() for c in re.split(r",\s*", header.group(3)) if c.strip())
        rules.append(
            PlaybookRule(
                rule_id=header.group(1),
                title=header.group(2).strip(),
                categories=categories,
                action=action,
                quotable=tuple(lines[0] for _, lines in fields if len(lines) == 1),
            )
        )
    return rules


def contract_slug(filename: str) -> str:
    """A stable, readable id for a CUAD contract: filer name plus document kind."""
    stem = filename.removesuffix(".txt")
    company = re.findall(r"[a-z0-9]+", stem.split("_", 1)[0].lower())
    kind = re.findall(r"[a-z0-9]+", re.split(r"[_-]", stem)[-1].lower())
    if "agreement" in kind:
        kind = kind[: kind.index("agreement") + 1]
    return "-".join(company + kind)


def load_contracts() -> list[Contract]:
    """The 12 bundled CUAD contracts, in file order."""
    contracts: list[Contract] = []
    with CONTRACTS_FILE.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            raw = json.loads(line)
            clauses = {
                category: ClauseLabel(
                    spans=tuple(label.get("spans") or ()), answer=str(label.get("answer") or "")
                )
                for category, label in raw["clauses"].items()
            }
            contracts.append(
                Contract(
                    filename=raw["filename"],
                    slug=contract_slug(raw["filename"]),
                    text=raw["text"],
                    clauses=clauses,
                )
            )
    return contracts


# ---------------------------------------------------------------------------------------------
# What a good comment says, per CUAD category: (comment_type, concern, recommended action).
# Concerns name "the playbook" rather than a rule number so a wrong-rule defect stays a rule defect.

_CATEGORY_TEXT: dict[str, tuple[str, str, str]] = {
    "Cap On Liability": (
        "deviation",
        "The limitation of liability is not a mutual cap of at least the fees paid or payable in "
        "the 12 months before the claim, the minimum the playbook accepts.",
        "Replace the limitation with a mutual cap equal to the fees paid or payable in the 12 "
        "months before the claim.",
    ),
    "Uncapped Liability": (
        "risk",
        "Liability under this clause is left uncapped beyond the carve-outs the playbook permits "
        "(fraud, wilful misconduct, confidentiality and indemnified IP claims).",
        "Escalate the uncapped liability to the General Counsel and propose a mutual cap of 12 "
        "months' fees.",
    ),
    "Liquidated Damages": (
        "risk",
        "The clause fixes pre-agreed damages that our company may have to pay, which the playbook "
        "does not allow.",
        "Delete the liquidated damages, or limit them to service credits capped at 10% of monthly "
        "fees.",
    ),
    "Termination For Convenience": (
        "deviation",
        "The termination-for-convenience terms are not a mutual right exercisable on 90 days' "
        "notice or less, as the playbook requires.",
        "Add a mutual right to terminate for convenience on 90 days' written notice.",
    ),
    "Exclusivity": (
        "risk",
        "The clause creates exclusivity, a restriction on dealing with competitors that the "
        "playbook flags.",
        "Remove the exclusivity, or limit it to the term and territory with the Commercial "
        "Director's approval.",
    ),
    "Non-Compete": (
        "risk",
        "The non-compete restricts competing business and is not limited to the term and the "
        "contract's territory, which the playbook flags.",
        "Limit the non-compete to the term and the contract territory, subject to the Commercial "
        "Director's approval.",
    ),
    "Competitive Restriction Exception": (
        "clarification",
        "This exception qualifies a competitive restriction; the restriction it carves out of "
        "must still be limited to the term and territory under the playbook.",
        "Confirm the exception covers our existing business and limit the underlying restriction "
        "to the term and territory.",
    ),
    "No-Solicit Of Employees": (
        "deviation",
        "The employee non-solicitation is not a mutual restriction of at most 12 months after the "
        "term with a general-advertisement exception, as the playbook requires.",
        "Make the clause mutual, cap it at 12 months after the term and add a "
        "general-advertisement exception.",
    ),
    "No-Solicit Of Customers": (
        "risk",
        "The clause restricts soliciting customers, which the playbook flags in every case.",
        "Delete the customer non-solicitation restriction.",
    ),
    "Anti-Assignment": (
        "deviation",
        "Assignment is restricted without the affiliate and successor exception the playbook "
        "requires, so a merger or sale could need the other party's consent.",
        "Add an exception allowing either party to assign to an affiliate or to a successor of "
        "its business without consent.",
    ),
    "Change Of Control": (
        "risk",
        "A change of control triggers consent or termination rights, which the playbook flags.",
        "Delete the change-of-control termination right and add the affiliate and successor "
        "exception.",
    ),
    "Ip Ownership Assignment": (
        "risk",
        "The clause transfers intellectual property ownership; the playbook allows only the "
        "assignment to us of deliverables we paid for, never an assignment of our own IP.",
        "Limit the assignment to paid deliverables and replace any transfer of our IP with a "
        "non-exclusive licence for the term and purpose of the contract.",
    ),
    "Joint Ip Ownership": (
        "risk",
        "The clause creates joint ownership of intellectual property, which the playbook flags.",
        "Replace joint ownership with ownership by the developing party and a non-exclusive "
        "licence for the term and purpose of the contract.",
    ),
    "License Grant": (
        "clarification",
        "The licence grant is not limited to a non-exclusive licence for the term and purpose of "
        "the contract, as the playbook requires.",
        "Restrict the grant to a non-exclusive licence for the term and purpose of the contract.",
    ),
    "Non-Transferable License": (
        "clarification",
        "The licence cannot be transferred, so it would not follow the agreement to an affiliate "
        "or successor.",
        "Allow the licence to be transferred together with the agreement to affiliates and "
        "successors.",
    ),
    "Irrevocable Or Perpetual License": (
        "risk",
        "The clause grants a perpetual or irrevocable licence, which the playbook flags when the "
        "licence is granted by us.",
        "Limit the licence to the term of the contract and make it end on termination.",
    ),
    "Most Favored Nation": (
        "risk",
        "The most-favoured-nation term restricts our pricing, which the playbook flags.",
        "Delete the most-favoured-nation commitment.",
    ),
    "Price Restrictions": (
        "risk",
        "The clause restricts our pricing, which the playbook flags.",
        "Delete the price restriction.",
    ),
    "Minimum Commitment": (
        "risk",
        "The clause imposes a minimum commitment, which the playbook flags when it binds our "
        "company.",
        "Remove the minimum commitment or turn it into a forecast without liability.",
    ),
    "Volume Restriction": (
        "risk",
        "The clause sets volume obligations, which the playbook flags when they bind our company.",
        "Remove the volume obligation or make it a forecast without liability.",
    ),
    "Audit Rights": (
        "deviation",
        "The audit right is not limited to once a year, on 30 days' notice, in business hours and "
        "at the auditor's cost, as the playbook requires.",
        "Limit audits to once a year, on 30 days' notice, in business hours, at the auditor's "
        "cost.",
    ),
    "Insurance": (
        "clarification",
        "The insurance obligations are not limited to USD 5 million per occurrence with mutual "
        "additional-insured obligations, as the playbook requires.",
        "Cap required cover at USD 5 million per occurrence and make additional-insured "
        "obligations mutual.",
    ),
    "Revenue/Profit Sharing": (
        "risk",
        "The clause shares revenue or profit, which the playbook requires to be approved in the "
        "deal memo.",
        "Escalate the revenue-sharing terms to the Commercial Director for approval against the "
        "deal memo.",
    ),
    "Third Party Beneficiary": (
        "risk",
        "The clause gives third parties rights under the agreement, which the playbook flags.",
        "Add an express exclusion of third-party rights.",
    ),
    "Covenant Not To Sue": (
        "risk",
        "The clause waives our right to sue or to challenge the other party's rights, which the "
        "playbook flags.",
        "Delete the covenant not to sue.",
    ),
}

# Categories whose assessment depends on the labelled answer (see _term_issue_text).
_TERM_CATEGORIES = (
    "Governing Law",
    "Expiration Date",
    "Renewal Term",
    "Notice Period To Terminate Renewal",
)
_ACCEPTED_LAWS = ("Delaware", "New York", "England", "England and Wales")


def _parse_us_date(answer: str) -> dt.date | None:
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", answer.strip())
    if not match:
        return None
    month, day, year = (int(part) for part in match.groups())
    if year < 100:
        year += 2000 if year < 50 else 1900
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _duration(answer: str, units: dict[str, int]) -> int | None:
    match = re.search(r"(\d+)\s*(" + "|".join(units) + r")s?\b", answer.lower())
    return int(match.group(1)) * units[match.group(2)] if match else None


def _term_issue_text(category: str, contract: Contract) -> tuple[str, str, str, bool] | None:
    """(comment_type, concern, action, acceptable) for answer-dependent categories, or None."""
    answer = contract.clauses[category].answer.strip()
    if category == "Governing Law":
        if not answer:
            return None
        if answer in _ACCEPTED_LAWS:
            return (
                "deviation",
                f"The contract is governed by {answer} law, but the playbook requires Delaware "
                "law, so this clause must be renegotiated.",
                "Propose Delaware law and Delaware courts.",
                True,
            )
        return (
            "deviation",
            f"The contract is governed by {answer} law, which is not one of the governing laws "
            "the playbook accepts (Delaware, New York, England and Wales).",
            f"Propose Delaware law and Delaware courts instead of {answer}.",
            False,
        )
    if category == "Expiration Date":
        start_label = contract.clauses.get("Effective Date") or contract.clauses.get(
            "Agreement Date"
        )
        start = _parse_us_date(start_label.answer) if start_label else None
        if answer.lower() == "perpetual":
            return (
                "deviation",
                "The agreement has no fixed end date, while the playbook accepts an initial term "
                "of at most three years.",
                "Set an initial term of no more than three years.",
                False,
            )
        end = _parse_us_date(answer)
        if start is None or end is None or end <= start:
            return None
        years = round((end - start).days / 365.25)
        length = f"about {years} year{'s' if years != 1 else ''}"
        if years > 3:
            return (
                "deviation",
                f"The initial term runs for {length}, longer than the three-year maximum the "
                "playbook accepts.",
                "Shorten the initial term to three years or less.",
                False,
            )
        return (
            "deviation",
            f"The initial term of {length} is too long under the playbook.",
            "Shorten the initial term.",
            True,
        )
    if category == "Renewal Term":
        months = _duration(answer, {"year": 12, "month": 1})
        if months is None:
            return None
        period = answer.removeprefix("successive ").strip()
        if months > 12:
            return (
                "deviation",
                f"The agreement renews automatically for periods of {period}, longer than the "
                "one-year renewal period the playbook accepts.",
                "Limit automatic renewals to one-year periods with 60 days' non-renewal notice.",
                False,
            )
        return (
            "deviation",
            f"Automatic renewal for periods of {period} is not allowed under the playbook.",
            "Delete the automatic renewal.",
            True,
        )
    if category == "Notice Period To Terminate Renewal":
        days = _duration(answer, {"day": 1, "month": 30, "year": 365})
        if days is None:
            return None
        if days < 60:
            return (
                "deviation",
                f"Renewal can be stopped on only {answer} notice, less than the 60 days' "
                "non-renewal notice the playbook requires.",
                "Require at least 60 days' notice to stop renewal.",
                False,
            )
        return (
            "deviation",
            f"A non-renewal notice period of {answer} is too short under the playbook.",
            "Lengthen the non-renewal notice period.",
            True,
        )
    return None


def _excerpt_from_span(span: str, contract_text: str) -> str | None:
    """A verbatim excerpt of a labelled span, cut to a readable length at a sentence or word."""
    # CUAD joins non-adjacent passages with "<omitted>"; each passage alone is verbatim.
    for piece in span.split("<omitted>"):
        piece = piece.strip().rstrip("(").rstrip()
        if len(piece) < 15 or piece not in contract_text:
            continue
        if len(piece) > 320:
            sentence_end = piece.find(". ", 80, 320)
            if sentence_end != -1:
                piece = piece[: sentence_end + 1]
            else:
                cut = piece.rfind(" ", 0, 280)
                piece = piece[: cut if cut > 0 else 280].rstrip(" ,;:")
        return piece
    return None


def review_issues(contract: Contract, rules: Sequence[PlaybookRule]) -> list[ReviewIssue]:
    """One issue per labelled category the playbook governs, in contract order.

    Acceptable terms (e.g. New York law) are kept, marked `acceptable`, for false-flag defects.
    """
    rule_of = {category: rule.rule_id for rule in rules for category in rule.categories}
    issues: list[ReviewIssue] = []
    seen: set[str] = set()
    for category, label in contract.clauses.items():
        if category not in rule_of:
            continue
        if category in _TERM_CATEGORIES:
            assessed = _term_issue_text(category, contract)
        elif category in _CATEGORY_TEXT:
            assessed = (*_CATEGORY_TEXT[category], False)
        else:
            assessed = None
        if assessed is None:
            continue
        for span in label.spans:
            excerpt = _excerpt_from_span(span, contract.text)
            if excerpt is None or excerpt in seen:
                continue
            seen.add(excerpt)
            comment_type, concern, action, acceptable = assessed
            issues.append(
                ReviewIssue(
                    category=category,
                    rule_id=rule_of[category],
                    excerpt=excerpt,
                    position=contract.text.index(excerpt),
                    comment_type=comment_type,
                    concern=concern,
                    action=action,
                    acceptable=acceptable,
                )
            )
            break  # one comment per category is what a reviewer writes
    return sorted(issues, key=lambda issue: issue.position)


# Labelled categories no playbook rule touches: a concern attached to them is irrelevant.
_UNRELATED_CATEGORIES = (
    "Document Name",
    "Parties",
    "Agreement Date",
    "Effective Date",
    "Warranty Duration",
    "Non-Disparagement",
)


def _unrelated_excerpts(contract: Contract) -> list[str]:
    """Verbatim excerpts of labelled text no playbook rule is about (title, parties, dates...)."""
    excerpts: list[str] = []
    for category, label in contract.clauses.items():
        if category not in _UNRELATED_CATEGORIES:
            continue
        for span in label.spans:
            excerpt = _excerpt_from_span(span, contract.text)
            if excerpt is not None and excerpt not in excerpts:
                excerpts.append(excerpt)
    return excerpts


# ---------------------------------------------------------------------------------------------
# Defects

_PARAPHRASES: tuple[tuple[str, str], ...] = (
    (" shall ", " will "),
    ("Agreement", "contract"),
    ("pursuant to", "under"),
    (" hereunder", " under this contract"),
    (" herein", " in this contract"),
    ("not exceed", "be no more than"),
    (" without ", " absent "),
    (" may ", " can "),
)


def _altered_excerpt(excerpt: str, contract_text: str, rng: _Rng) -> str:
    """A plausible misquote of `excerpt` that does not occur anywhere in the contract."""

    def paraphrase(text: str) -> str:
        for old, new in _PARAPHRASES:
            text = text.replace(old, new)
        return text

    def change_number(text: str) -> str:
        match = re.search(r"\d+", text)
        if not match:
            return text
        number = str(int(match.group()) + rng.randint(1, 4))
        return text[: match.start()] + number + text[match.end() :]

    def elide(text: str) -> str:
        words = text.split()
        if len(words) < 12:
            return text
        cut = rng.randint(4, len(words) - 5)
        return " ".join(words[:cut]) + " ... " + " ".join(words[cut + 3 :])

    # A misquote must differ in words, not just in spacing, which grounding checks forgive.
    flat_contract = _squash(contract_text)
    for strategy in rng.shuffled([paraphrase, change_number, elide]):
        altered = strategy(excerpt)
        if _squash(altered) not in flat_contract:
            return altered
    fallback = "The agreement provides that " + excerpt[:1].lower() + excerpt[1:]
    if _squash(fallback) in flat_contract:  # pragma: no cover - the contract quoting itself
        raise ValueError("could not alter the excerpt out of the contract")
    return fallback


def _squash(text: str) -> str:
    """Text with runs of whitespace made single spaces."""
    return " ".join(text.split())


def _comment(excerpt: str, rule_id: str, comment_type: str, concern: str, action: str) -> dict:
    return {
        "text_excerpt": excerpt,
        "rule": rule_id,
        "comment_type": comment_type,
        "concern": concern,
        "recommended_action": action,
    }


_DEFECT_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    PROFILE_STRONG: ((DEFECT_VAGUE_ACTION, 0.5), (DEFECT_NOT_IN_CONTRACT, 0.5)),
    PROFILE_MIXED: (
        (DEFECT_NOT_IN_CONTRACT, 0.25),
        (DEFECT_QUOTES_PLAYBOOK, 0.2),
        (DEFECT_WRONG_RULE, 0.2),
        (DEFECT_IRRELEVANT, 0.12),
        (DEFECT_FLAGS_ACCEPTABLE, 0.08),
        (DEFECT_VAGUE_ACTION, 0.15),
    ),
}
_DEFECT_WEIGHTS[PROFILE_WEAK] = _DEFECT_WEIGHTS[PROFILE_MIXED]
_DEFECT_RATE = {PROFILE_STRONG: 0.06, PROFILE_MIXED: 0.35, PROFILE_WEAK: 0.7}
_COMMENT_COUNT = {PROFILE_STRONG: (3, 6), PROFILE_MIXED: (3, 6), PROFILE_WEAK: (2, 5)}


def _generate_comments(
    contract: Contract,
    rules: Sequence[PlaybookRule],
    profile: str,
    step: int,
    rng: _Rng,
) -> tuple[list[dict[str, str]], list[list[str]]]:
    """One generation's comments and, aligned with them, the defects injected into each."""
    # Within a profile, training still helps: defects get rarer as the step grows.
    defect_rate = _DEFECT_RATE[profile] * (1.3 - 0.8 * step / STEPS[-1])
    rules_by_id = {rule.rule_id: rule for rule in rules}
    rule_of = {category: rule.rule_id for rule in rules for category in rule.categories}
    issues = review_issues(contract, rules)
    flagged = rng.shuffled(issue for issue in issues if not issue.acceptable)
    acceptable = [issue for issue in issues if issue.acceptable]
    unrelated = _unrelated_excerpts(contract)
    low, high = _COMMENT_COUNT[profile]
    count = min(rng.randint(low, high), len(flagged))

    planned: list[tuple[int, dict[str, str], list[str]]] = []
    for issue in flagged[:count]:
        defect = rng.weighted(_DEFECT_WEIGHTS[profile]) if rng.random() < defect_rate else None
        if defect == DEFECT_FLAGS_ACCEPTABLE and not acceptable:
            defect = DEFECT_WRONG_RULE
        if defect == DEFECT_IRRELEVANT and not unrelated:
            defect = DEFECT_NOT_IN_CONTRACT
        position = issue.position
        comment = _comment(
            issue.excerpt, issue.rule_id, issue.comment_type, issue.concern, issue.action
        )
        if defect == DEFECT_NOT_IN_CONTRACT:
            comment["text_excerpt"] = _altered_excerpt(issue.excerpt, contract.text, rng)
        elif defect == DEFECT_QUOTES_PLAYBOOK:
            comment["text_excerpt"] = rng.choice(rules_by_id[issue.rule_id].quotable)
        elif defect == DEFECT_WRONG_RULE:
            others = [rule.rule_id for rule in rules if rule.rule_id != issue.rule_id]
            comment["rule"] = rng.choice(others)
        elif defect == DEFECT_FLAGS_ACCEPTABLE:
            false_flag = acceptable.pop(0)
            position = false_flag.position
            comment = _comment(
                false_flag.excerpt,
                false_flag.rule_id,
                false_flag.comment_type,
                false_flag.concern,
                false_flag.action,
            )
        elif defect == DEFECT_IRRELEVANT:
            excerpt = unrelated.pop(rng.randint(0, len(unrelated) - 1))
            position = contract.text.index(excerpt)
            # A real concern and action, attached to text they have nothing to do with.
            category = rng.choice(sorted(_CATEGORY_TEXT))
            comment_type, concern, action = _CATEGORY_TEXT[category]
            comment = _comment(excerpt, rule_of[category], comment_type, concern, action)
        elif defect == DEFECT_VAGUE_ACTION:
            comment["recommended_action"] = rng.choice(VAGUE_ACTIONS)
        defects = [defect] if defect else []
        # Weak generations also tend to stop at "review this clause".
        if (
            profile == PROFILE_WEAK
            and defect not in (None, DEFECT_VAGUE_ACTION)
            and rng.random() < 0.3
        ):
            comment["recommended_action"] = rng.choice(VAGUE_ACTIONS)
            defects.append(DEFECT_VAGUE_ACTION)
        planned.append((position, comment, defects))

    planned.sort(key=lambda item: item[0])  # models comment in document order
    return [comment for _, comment, _ in planned], [defects for _, _, defects in planned]


def _prose_response(comments: Sequence[dict[str, str]]) -> str:
    lines = ["Here is my review of the contract against the playbook.", ""]
    for number, comment in enumerate(comments, start=1):
        lines.append(
            f"{number}. {comment['rule']}: {comment['concern']} "
            f"I recommend: {comment['recommended_action']}"
        )
    lines += ["", "Let me know if you would like the comments in another format."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The data set


def _step_for(contract_index: int, generation: int) -> int:
    # Each contract's generations sit at different points of the run; every step is used.
    return STEPS[(contract_index + 2 * generation) % len(STEPS)]


def _response_defect_slots(contracts: Sequence[Contract]) -> dict[tuple[int, int], str]:
    """Which (contract, generation) produce whole-response failures: mostly early in training."""
    slots = [(c, g) for c in range(len(contracts)) for g in range(GENERATIONS_PER_CONTRACT)]
    rng = _Rng("response-defects")
    early = rng.shuffled(slot for slot in slots if _step_for(*slot) <= 200)
    late = rng.shuffled(slot for slot in slots if _step_for(*slot) >= 400)
    kinds = [RESPONSE_MALFORMED, RESPONSE_MALFORMED, RESPONSE_EMPTY, RESPONSE_PROSE, RESPONSE_PROSE]
    assigned = dict(zip(early, kinds, strict=False))
    assigned[late[0]] = RESPONSE_MALFORMED  # truncation at max tokens happens late in a run too
    return assigned


def _quality_profile(step: int, rng: _Rng) -> str:
    progress = step / STEPS[-1]
    strong = 0.1 + 0.85 * progress
    weak = 0.5 * (1 - progress) ** 2
    return rng.weighted(
        ((PROFILE_STRONG, strong), (PROFILE_WEAK, weak), (PROFILE_MIXED, 1 - strong - weak))
    )


def build_legal_demo() -> DemoDataset:
    """The legal demo project: 12 CUAD contracts x 4 generations, deterministic."""
    playbook = load_playbook_text()
    rules = parse_playbook(playbook)
    contracts = load_contracts()
    failures = _response_defect_slots(contracts)
    rollouts: list[dict[str, Any]] = []
    for c, contract in enumerate(contracts):
        for g in range(GENERATIONS_PER_CONTRACT):
            step = _step_for(c, g)
            rng = _Rng(contract.slug, g)
            failure = failures.get((c, g))
            profile = failure or _quality_profile(step, rng)
            comments, defects = _generate_comments(
                contract, rules, PROFILE_MIXED if failure else profile, step, rng
            )
            if failure == RESPONSE_EMPTY:
                response = "[]"
            elif failure == RESPONSE_PROSE:
                response = _prose_response(comments)
            else:
                response = json.dumps(comments, ensure_ascii=False, indent=2)
                if failure == RESPONSE_MALFORMED:
                    # Cut inside the array, as when generation hits its token limit.
                    response = response[: int(len(response) * (0.35 + 0.45 * rng.random()))]
            rollouts.append(
                {
                    "id": f"cuad-{contract.slug}-g{g}",
                    "group": contract.slug,
                    "input": [
                        {"role": "system", "content": POLICY_SYSTEM_PROMPT},
                        {"role": "user", "content": USER_PROMPT},
                    ],
                    "target_document": contract.text,
                    "references": [{"title": PLAYBOOK_TITLE, "text": playbook}],
                    "response": response,
                    "model": MODEL_NAME,
                    "checkpoint": f"{MODEL_NAME}/step-{step}",
                    "step": step,
                    "metadata": {
                        "contract_file": contract.filename,
                        "source": SOURCE,
                        "quality_profile": profile,
                        "generation": g,
                        "response_defect": failure,
                        # Unparseable or empty responses have no comments to describe.
                        "defects": [] if failure else defects,
                    },
                }
            )
    return DemoDataset(
        project_name=PROJECT_NAME,
        project_description=PROJECT_DESCRIPTION,
        policy_system_prompt=POLICY_SYSTEM_PROMPT,
        output_schema=OUTPUT_SCHEMA,
        attribution=ATTRIBUTION,
        rollouts=rollouts,
    )


def iter_jsonl_lines(dataset: DemoDataset | Iterable[dict[str, Any]]) -> Iterator[str]:
    """The records as studio JSONL lines (without trailing newlines)."""
    records = dataset.rollouts if isinstance(dataset, DemoDataset) else dataset
    for record in records:
        yield json.dumps(record, ensure_ascii=False)


def write_jsonl(dataset: DemoDataset | Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write the records to `path` as UTF-8 studio JSONL; returns the number of lines."""
    count = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as handle:
        for line in iter_jsonl_lines(dataset):
            handle.write(line + "\n")
            count += 1
    return count
