"""Studio-side alias of app.rubrics.reference_answer; generated packages get a verbatim copy."""

from app.rubrics.reference_answer import reference_answer_text as reference_answer_text
