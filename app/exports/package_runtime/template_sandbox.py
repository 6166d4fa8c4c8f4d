"""Studio-side alias of app.rubrics.template_sandbox; generated packages get a verbatim copy."""

from app.rubrics.template_sandbox import MAX_RENDERED_CHARS as MAX_RENDERED_CHARS
from app.rubrics.template_sandbox import BudgetExceeded as BudgetExceeded
from app.rubrics.template_sandbox import make_environment as make_environment
