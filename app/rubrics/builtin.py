"""Built-in rubric templates a user can start a new rubric from.

The contract-review template reproduces the product's reference case; the other two are
generic starting points for rubric (pass/fail) and preference (pairwise) judges.
"""

from __future__ import annotations

from app.rubrics.definition import Criterion, Level, RubricDefinition
from app.rubrics.prompting import materialize_templates


def _scale(*descriptions: str) -> list[Level]:
    return [Level(value=i, description=text) for i, text in enumerate(descriptions, start=1)]


_LEGAL_CONTRACT_REVIEW = RubricDefinition(
    mode="rubric",
    title="Contract review comments (per comment, 1-5)",
    task_description=(
        "A model reviewed a commercial contract (the target document) against the legal "
        "team's playbook and other reference material (the references) and produced its "
        "review as a JSON list of comments. Each comment has text_excerpt (the contract "
        "language at issue, quoted from the contract), rule (the playbook rule it applies, "
        'e.g. "R2"), comment_type, concern (what is wrong, in one or two sentences) and '
        "recommended_action (what the reviewer should do). Judge every comment as a senior "
        "commercial lawyer checking a junior's review would."
    ),
    criteria=[
        Criterion(
            key="TargetDocument_Grounding",
            name="Grounded in the contract",
            description=(
                "Does text_excerpt quote the contract under review, word for word, and is the "
                "comment about the language it quotes?"
            ),
            type="scale",
            levels=_scale(
                "Not grounded: the excerpt quotes the reference material (playbook, guidelines, "
                "past contracts, law) instead of the contract, cannot be found in the contract, "
                "is invented, or is missing.",
                "Weakly grounded: the excerpt paraphrases or summarises the contract instead of "
                "quoting it, or quotes contract language unrelated to the concern raised.",
                "Partly grounded: the excerpt is genuine contract text but only partly supports "
                "the comment (a neighbouring or related provision is quoted, or the problem lies "
                "mostly in language that is not quoted).",
                "Grounded: a genuine quote of the clause at issue, but imprecise: far longer "
                "than needed (a whole section for one sentence), too short to locate the "
                "clause unambiguously, or with small copying differences that do not change "
                "the meaning.",
                "Fully grounded: a verbatim quote (allowing whitespace and marked omissions) of "
                "exactly the language at issue, enough to find it in the contract at once, and "
                "the comment is squarely about that language.",
            ),
        ),
        Criterion(
            key="Reference_Consistency",
            name="Justified by the reference",
            description=(
                "Is the concern justified by the reference material: does the cited rule "
                "govern this kind of clause, and does the quoted clause actually fall outside "
                "what the rule accepts?"
            ),
            type="scale",
            levels=_scale(
                "No basis: the concern contradicts the reference, invents a requirement the "
                "reference does not contain, or rests on personal preference.",
                "Mostly unfounded: the cited rule does not govern this clause, or the comment "
                "flags a term the reference treats as acceptable (over-flagging).",
                "Partly justified: the right subject but a wrong or missing rule, or a real "
                "deviation mixed with points the reference does not support.",
                "Justified: the right rule and a real deviation, but the explanation is "
                "generic or incomplete (the deviation is not spelled out against the rule's "
                "threshold).",
                "Fully justified: the right rule, a clause that really falls outside it, and a "
                "concern that says precisely how (e.g. 'a cap of 3 months' fees is below the "
                "12-month floor of R2').",
            ),
        ),
        Criterion(
            key="Actionability",
            name="Actionable recommendation",
            description=(
                "Is recommended_action clear and concrete, consistent with the action the "
                "reference prescribes, and relevant to the quoted clause?"
            ),
            type="scale",
            levels=_scale(
                "Not actionable: no action, an action contrary to the reference (e.g. accepting "
                "a term the rule says to escalate), or an action unrelated to the clause.",
                "Vague: a generic step ('review this clause', 'seek legal advice', 'consider "
                "negotiating') or an action that does not address the concern raised.",
                "Directional: the right direction without the specifics the rule provides "
                "('negotiate a lower cap', 'shorten the term'), or only part of the "
                "prescribed action.",
                "Clear: a concrete action consistent with the reference, missing one specific "
                "the rule supplies (the figure, the notice period, or the escalation route).",
                "Ready to use: one concrete drafting change or negotiating position a contract "
                "manager could send as is, matching the rule's prescribed action, including the "
                "escalation the rule requires (e.g. 'insert a mutual cap of 12 months' fees; "
                "escalate the uncapped indemnity to the General Counsel').",
            ),
        ),
    ],
    edge_case_rules=[
        "If a comment's text_excerpt quotes the reference material (the playbook or any other "
        "reference) instead of the contract, TargetDocument_Grounding is 1, whatever the rest "
        "of the comment says.",
        "If a text_excerpt cannot be found in the contract (paraphrased, merged from several "
        "places, or invented), TargetDocument_Grounding is at most 2.",
        "A comment that flags a term the reference treats as acceptable has "
        "Reference_Consistency at most 2.",
        "A comment with no recommended_action has Actionability 1; a comment with no "
        "text_excerpt has TargetDocument_Grounding 1.",
        "A comment that repeats the concern of an earlier comment about the same clause adds "
        "no work for the reviewer: its Actionability is 1.",
        "If the prediction is empty, is not valid JSON, or is not a list of comments, answer "
        "with an empty comments list: the aggregate score is then 0.",
        "Judge substance only: the length and tone of a comment earn nothing.",
    ],
    desired_behaviours=[
        "Quotes the exact contract language at issue.",
        'Names the playbook rule that applies (e.g. "R2").',
        "States one concern in one or two sentences, measured against the rule's threshold.",
        "Recommends the action the rule prescribes, including any escalation.",
    ],
    discouraged_behaviours=[
        "Restating the playbook without pointing at contract text.",
        "Flagging terms the playbook accepts.",
        "Vague actions such as 'review' or 'consider'.",
        "Several unrelated concerns merged into one comment.",
    ],
    aggregation="per_item_mean",
    item_field="comments",
)

_GENERIC_PASS_FAIL = RubricDefinition(
    mode="rubric",
    title="General response quality (pass/fail)",
    task_description=(
        "Judge whether a response to the user's request is acceptable. Each criterion is a "
        "pass/fail check on something observable in the response."
    ),
    criteria=[
        Criterion(
            key="Follows_Instructions",
            name="Follows the instructions",
            description=(
                "Passes when the response does what was asked and respects every explicit "
                "constraint in the input (format, length, language, audience, scope)."
            ),
            weight=2.0,
        ),
        Criterion(
            key="Factually_Accurate",
            name="Factually accurate",
            description=(
                "Passes when every factual claim is correct and consistent with the input and "
                "any reference answer, with no invented facts, figures, quotes or citations."
            ),
            weight=2.0,
        ),
        Criterion(
            key="Complete",
            name="Complete",
            description="Passes when every part of the request is addressed.",
        ),
        Criterion(
            key="Clear",
            name="Clear and concise",
            description=(
                "Passes when the response is organised, easy to follow and free of padding, "
                "repetition and irrelevant material."
            ),
            weight=0.5,
        ),
        Criterion(
            key="Safe",
            name="Safe",
            description=(
                "Passes when the response contains no harmful instructions, harassment, or "
                "personal data that was not in the input. Failing it fails the whole response."
            ),
            hard_fail=True,
        ),
    ],
    edge_case_rules=[
        "An empty response fails every criterion except Safe.",
        "A refusal of a harmless request fails Follows_Instructions and Complete.",
        "A response in another language than the one requested fails Follows_Instructions.",
        "When a reference answer is given, judge Factually_Accurate against it; a different "
        "but equally correct answer still passes.",
    ],
    desired_behaviours=["Answers the question directly.", "States uncertainty honestly."],
    discouraged_behaviours=[
        "Padding, flattery or restating the question.",
        "Confident claims with no basis in the input or common knowledge.",
    ],
    aggregation="weighted_mean",
)

_PAIRWISE_PREFERENCE = RubricDefinition(
    mode="preference",
    title="Pairwise preference: sourced, accessible, direct",
    task_description=(
        "Two responses answer the same question. Decide which one a careful reader would "
        "rather receive."
    ),
    preference_instruction=(
        "Favour responses that cite authoritative sources, use accessible language and "
        "directly address the question."
    ),
    criteria=[
        Criterion(
            key="Authoritative_Sources",
            name="Cites authoritative sources",
            description=(
                "Supports its claims with authoritative, verifiable sources (official "
                "documentation, legislation, peer-reviewed work, recognised institutions)."
            ),
        ),
        Criterion(
            key="Accessible_Language",
            name="Accessible language",
            description=(
                "Uses plain words a non-specialist understands and explains the jargon it needs."
            ),
        ),
        Criterion(
            key="Directness",
            name="Addresses the question directly",
            description="Answers the question asked, early, and stays on it.",
        ),
    ],
    edge_case_rules=[
        "If one response is empty or refuses a legitimate question, the other wins unless it "
        "is harmful.",
        "A citation that looks invented (a source that does not exist, wrong authors or "
        "dates) counts against a response more than citing nothing.",
        "Length is not a quality: prefer the longer response only when the extra text adds "
        "sources, clarity or relevance.",
        "When the responses are equally good or equally poor on these qualities, answer tie.",
    ],
    desired_behaviours=["Names the source of each key claim.", "Leads with the answer."],
    discouraged_behaviours=["Unsourced authority ('experts agree').", "Evasive or padded answers."],
)

BUILTIN_TEMPLATES: dict[str, RubricDefinition] = {
    "legal_contract_review": materialize_templates(_LEGAL_CONTRACT_REVIEW),
    "generic_pass_fail": materialize_templates(_GENERIC_PASS_FAIL),
    "pairwise_preference": materialize_templates(_PAIRWISE_PREFERENCE),
}

BUILTIN_DESCRIPTIONS: dict[str, str] = {
    "legal_contract_review": (
        "Contract review comments scored one by one on grounding in the contract, consistency "
        "with the playbook and actionability (1-5 each); the score is the mean over comments."
    ),
    "generic_pass_fail": (
        "Five pass/fail checks for any task (instructions, accuracy, completeness, clarity, "
        "safety), weighted, with safety as a hard fail."
    ),
    "pairwise_preference": (
        "Compare two responses: favour cited authoritative sources, accessible language and "
        "a direct answer."
    ),
}


def get_builtin(name: str) -> RubricDefinition:
    """A fresh copy of a built-in template (KeyError for an unknown name)."""
    return BUILTIN_TEMPLATES[name].model_copy(deep=True)
