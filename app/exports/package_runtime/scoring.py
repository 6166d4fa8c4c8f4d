"""Studio-side alias of app.rubrics.scoring; generated packages get a verbatim copy instead."""

from app.rubrics.scoring import ScoringError as ScoringError
from app.rubrics.scoring import response_item_count as response_item_count
from app.rubrics.scoring import score_answer as score_answer
