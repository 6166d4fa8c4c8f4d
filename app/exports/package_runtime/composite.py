"""Studio-side alias of app.rewards.composite; generated packages get a verbatim copy instead."""

from app.rewards.composite import compute_reward as compute_reward
from app.rewards.composite import judge_needed as judge_needed
from app.rewards.composite import metrics as metrics
from app.rewards.composite import neutral_reward as neutral_reward
