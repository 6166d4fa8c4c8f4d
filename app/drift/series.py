"""The training-run dashboard's per-bucket series, aggregated in the database.

Every figure is computed by SQL over `drift_sample` (nothing per sample comes back to Python):

- reward mean and p10/p50/p90, response length mean and p90: on PostgreSQL with
  `percentile_cont`; on SQLite with the same definition (linear interpolation between the two
  closest ranks, h = (n - 1) p) from ROW_NUMBER() over the bucket — exact, not approximate;
- the reward–length rank correlation (Spearman's rho): average ranks of ties from RANK() and
  COUNT() windows, then the Pearson correlation of the ranks from per-bucket sums;
- per criterion: the mean of the judge's value (booleans stored as 0/1, so a pass rate), per
  component: the pass rate and the mean score, via jsonb_each_text / json_each;
- standard deviations of reward and length from AVG(x) and AVG(x*x) (for the signals' tests);
- rates: judge error, neutral reward, gated, text addressed to the judge; the share of quoted
  excerpts not found in the target document (pooled: not-found / quoted); judge latency mean;
- GRPO groups: the share of groups (2+ samples of one group id in the bucket) whose rewards are
  all equal (spread max - min below 1e-9): no learning signal.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from app.drift.buckets import BucketPlan

ZERO_SPREAD = 1e-9
PERCENTILES = (0.1, 0.5, 0.9)


def _base(dialect: str) -> str:
    return (
        "SELECT (step - :start) / :width AS b, * FROM drift_sample "
        "WHERE training_run_id = :run AND step IS NOT NULL AND step >= :start"
    )


def compute_series(session: Session, run_id: int, plan: BucketPlan) -> list[dict[str, Any]]:
    """One dict per non-empty bucket, in step order (see docs/drift.md for each field)."""
    dialect = session.get_bind().dialect.name
    params = {"run": run_id, "start": plan.start, "width": plan.width}
    base = _base(dialect)
    rows: dict[int, dict[str, Any]] = {}
    postgres = dialect == "postgresql"
    # PostgreSQL: the percentiles in the same pass as the means, and every JSON figure in one
    # more (each pass reads all the run's samples: at a million, each costs seconds).
    main = _MAIN.replace("{percentiles}", _PG_PERCENTILES if postgres else "")
    percentiles: dict[str, dict[int, tuple[float | None, ...]]] = {"reward": {}, "length": {}}
    for row in session.execute(text(main.format(base=base)), params).mappings():
        index = int(row["b"])
        first, last = plan.bounds(index)
        quotes = int(row["quotes"] or 0)
        rows[index] = {
            "bucket": index,
            "step_start": first,
            "step_end": last,
            "n": int(row["n"]),
            "reward_mean": _f(row["reward_mean"]),
            "reward_sd": _sd(row["reward_mean"], row["reward_sq"], int(row["n"])),
            "length_mean": _f(row["length_mean"]),
            "length_sd": _sd(row["length_mean"], row["length_sq"], int(row["n"])),
            "judge_error_rate": _f(row["judge_error_rate"]),
            "neutral_rate": _f(row["neutral_rate"]),
            "gate_rate": _f(row["gate_rate"]),
            "judge_addressed_rate": _f(row["judge_addressed_rate"]),
            "judge_addressed": int(row["judge_addressed"] or 0),
            "quotes": quotes,
            "ungrounded_share": (int(row["ungrounded"] or 0) / quotes) if quotes else None,
            "latency_mean_ms": _f(row["latency_mean"]),
            "criteria": {},
            "components": {},
        }
        if postgres:
            for name in ("reward", "length"):
                cuts = row[f"{name}_p"]
                percentiles[name][index] = tuple(_f(v) for v in cuts) if cuts else (None,) * 3
    if not rows:
        return []
    for name, column in (("reward", "reward"), ("length", "response_chars")):
        found = percentiles[name] or _percentiles(session, dialect, base, column, params)
        for index, values in found.items():
            if index in rows:
                for label, value in zip(("p10", "p50", "p90"), values, strict=True):
                    rows[index][f"{name}_{label}"] = value
    for index, rho in _spearman(session, base, params).items():
        if index in rows:
            rows[index]["reward_length_spearman"] = rho
    for row in session.execute(text(_GROUPS.format(base=base)), params).mappings():
        index = int(row["b"])
        if index in rows:
            groups = int(row["groups"])
            rows[index]["groups"] = groups
            rows[index]["zero_spread_share"] = int(row["zero"]) / groups if groups else None
    if postgres:
        _json_figures_postgres(session, base, params, rows)
    else:
        _json_figures(session, base, params, rows)
    ordered = [rows[index] for index in sorted(rows)]
    for bucket in ordered:
        bucket.setdefault("reward_length_spearman", None)
        bucket.setdefault("groups", 0)
        bucket.setdefault("zero_spread_share", None)
    return ordered


def _json_figures_postgres(
    session: Session, base: str, params: dict[str, Any], rows: dict[int, dict[str, Any]]
) -> None:
    """The criteria and components figures of _json_figures, in one pass over the samples."""
    found: dict[str, list[Any]] = {"criteria": [], "passed": [], "components": []}
    for row in session.execute(text(_PG_JSON.format(base=base)), params).mappings():
        found[row["kind"]].append(row)
    for row in found["criteria"]:
        index = int(row["b"])
        if index in rows:
            rows[index]["criteria"][row["key"]] = {
                "mean": _f(row["mean"]),
                "n": int(row["n"]),
                "binary": int(row["non_binary"] or 0) == 0,
            }
    for row in found["passed"]:
        index = int(row["b"])
        if index in rows:
            rows[index]["components"][row["key"]] = {
                "n": int(row["n"]),
                "pass_rate": _f(row["mean"]),
            }
    for row in found["components"]:
        index = int(row["b"])
        if index in rows:
            entry = rows[index]["components"].setdefault(row["key"], {"n": int(row["n"])})
            entry["mean"] = _f(row["mean"])


def _json_figures(
    session: Session, base: str, params: dict[str, Any], rows: dict[int, dict[str, Any]]
) -> None:
    """Per bucket: each criterion's mean (a pass rate for 0/1 values), each component's pass
    rate and mean score (SQLite: three passes with json_each)."""
    each, number = "json_each", "j.value"
    for row in session.execute(
        text(_CRITERIA.format(base=base, each=each, number=number, column="judge_criteria")),
        params,
    ).mappings():
        index = int(row["b"])
        if index in rows:
            rows[index]["criteria"][row["key"]] = {
                "mean": _f(row["mean"]),
                "n": int(row["n"]),
                "binary": int(row["non_binary"] or 0) == 0,
            }
    passed = "CAST(j.value AS REAL)"
    for row in session.execute(
        text(_COMPONENTS.format(base=base, each=each, passed=passed, number=number)), params
    ).mappings():
        index = int(row["b"])
        if index in rows:
            rows[index]["components"][row["key"]] = {
                "n": int(row["n"]),
                "pass_rate": _f(row["pass_rate"]),
            }
    for row in session.execute(
        text(_CRITERIA.format(base=base, each=each, number=number, column="components")), params
    ).mappings():
        index = int(row["b"])
        if index in rows:
            entry = rows[index]["components"].setdefault(row["key"], {"n": int(row["n"])})
            entry["mean"] = _f(row["mean"])


def _sd(mean: Any, mean_of_squares: Any, n: int) -> float | None:
    """Sample standard deviation from the mean and the mean of squares."""
    if mean is None or mean_of_squares is None or n < 2:
        return None
    variance = max(0.0, float(mean_of_squares) - float(mean) ** 2) * n / (n - 1)
    return math.sqrt(variance)


def _f(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


_MAIN = """
WITH base AS ({base})
SELECT b, COUNT(*) AS n,
       AVG(reward) AS reward_mean,
       AVG(reward * reward) AS reward_sq,
       AVG(CAST(response_chars AS DOUBLE PRECISION)) AS length_mean,
       AVG(CAST(response_chars AS DOUBLE PRECISION) * response_chars) AS length_sq,
       AVG(CASE WHEN judge_status = 'error' THEN 1.0 ELSE 0.0 END) AS judge_error_rate,
       AVG(CASE WHEN neutral_reward THEN 1.0 ELSE 0.0 END) AS neutral_rate,
       AVG(CASE WHEN gated_by IS NOT NULL THEN 1.0 ELSE 0.0 END) AS gate_rate,
       AVG(CASE WHEN judge_addressed THEN 1.0 ELSE 0.0 END) AS judge_addressed_rate,
       SUM(CASE WHEN judge_addressed THEN 1 ELSE 0 END) AS judge_addressed,
       SUM(quotes_total) AS quotes, SUM(quotes_ungrounded) AS ungrounded,
       AVG(latency_ms) AS latency_mean{percentiles}
FROM base GROUP BY b ORDER BY b
"""

_PG_PERCENTILES = f""",
       percentile_cont(ARRAY{list(PERCENTILES)}) WITHIN GROUP (ORDER BY reward) AS reward_p,
       percentile_cont(ARRAY{list(PERCENTILES)}) WITHIN GROUP (ORDER BY response_chars)
         AS length_p"""

_PG_JSON = """
WITH base AS ({base})
SELECT b, j.kind, j.key, COUNT(*) AS n, AVG(j.number) AS mean,
       SUM(CASE WHEN j.number IN (0, 1) THEN 0 ELSE 1 END) AS non_binary
FROM base, LATERAL (
  SELECT 'criteria' AS kind, key, CAST(value AS DOUBLE PRECISION) AS number
  FROM jsonb_each_text(base.judge_criteria)
  UNION ALL
  SELECT 'components', key, CAST(value AS DOUBLE PRECISION) FROM jsonb_each_text(base.components)
  UNION ALL
  SELECT 'passed', key, CASE WHEN value = 'true' THEN 1.0 ELSE 0.0 END
  FROM jsonb_each_text(base.components_passed)
) AS j
GROUP BY b, j.kind, j.key
"""

_GROUPS = """
WITH base AS ({base}),
g AS (SELECT b, group_id, COUNT(*) AS k, MAX(reward) - MIN(reward) AS spread
      FROM base WHERE group_id IS NOT NULL GROUP BY b, group_id)
SELECT b, COUNT(*) AS groups,
       SUM(CASE WHEN spread < {zero} THEN 1 ELSE 0 END) AS zero
FROM g WHERE k >= 2 GROUP BY b
""".replace("{zero}", repr(ZERO_SPREAD))

_CRITERIA = """
WITH base AS ({base})
SELECT b, j.key AS key, COUNT(*) AS n, AVG({number}) AS mean,
       SUM(CASE WHEN {number} IN (0, 1) THEN 0 ELSE 1 END) AS non_binary
FROM base, {each}(base.{column}) AS j
GROUP BY b, j.key
"""

_COMPONENTS = """
WITH base AS ({base})
SELECT b, j.key AS key, COUNT(*) AS n, AVG({passed}) AS pass_rate
FROM base, {each}(base.components_passed) AS j
GROUP BY b, j.key
"""


def _percentiles(
    session: Session, dialect: str, base: str, column: str, params: dict[str, Any]
) -> dict[int, tuple[float | None, ...]]:
    out: dict[int, tuple[float | None, ...]] = {}
    if dialect == "postgresql":
        sql = (
            f"WITH base AS ({base}) SELECT b, percentile_cont(ARRAY{list(PERCENTILES)}) "
            f"WITHIN GROUP (ORDER BY {column}) AS p FROM base GROUP BY b"
        )
        for bucket, cuts in session.execute(text(sql), params):
            out[int(bucket)] = tuple(_f(v) for v in cuts)
        return out
    # SQLite: the same interpolation from ranks. h = (n-1)p; value = x[lo] + (h-lo)(x[lo+1]-x[lo]).
    picks = []
    for i, p in enumerate(PERCENTILES):
        h = f"((cnt - 1) * {p})"
        lo = f"CAST({h} AS INTEGER)"
        picks.append(
            f"SUM(CASE WHEN rn = {lo} THEN v END) AS lo{i}, "
            f"SUM(CASE WHEN rn = {lo} + 1 THEN v END) AS hi{i}, "
            f"MAX({h} - {lo}) AS fr{i}"
        )
    sql = (
        f"WITH base AS ({base}), r AS (SELECT b, CAST({column} AS REAL) AS v, "
        f"ROW_NUMBER() OVER (PARTITION BY b ORDER BY {column}) - 1 AS rn, "
        f"COUNT(*) OVER (PARTITION BY b) AS cnt FROM base) "
        f"SELECT b, {', '.join(picks)} FROM r GROUP BY b"
    )
    for row in session.execute(text(sql), params).mappings():
        values: list[float | None] = []
        for i in range(len(PERCENTILES)):
            low, high, frac = row[f"lo{i}"], row[f"hi{i}"], row[f"fr{i}"] or 0.0
            if low is None:
                values.append(None)
                continue
            values.append(
                float(low)
                + float(frac) * ((float(high) if high is not None else float(low)) - float(low))
            )
        out[int(row["b"])] = tuple(values)
    return out


_RANKS = """
WITH base AS ({base}),
r AS (SELECT b,
        RANK() OVER (PARTITION BY b ORDER BY reward)
          + (COUNT(*) OVER (PARTITION BY b, reward) - 1) / 2.0 AS x,
        RANK() OVER (PARTITION BY b ORDER BY response_chars)
          + (COUNT(*) OVER (PARTITION BY b, response_chars) - 1) / 2.0 AS y
      FROM base)
SELECT b, COUNT(*) AS n, SUM(x) AS sx, SUM(y) AS sy, SUM(x * y) AS sxy,
       SUM(x * x) AS sxx, SUM(y * y) AS syy
FROM r GROUP BY b
"""


def _spearman(session: Session, base: str, params: dict[str, Any]) -> dict[int, float | None]:
    """Spearman's rho per bucket: Pearson's r of average ranks (ties share their mean rank)."""
    out: dict[int, float | None] = {}
    for row in session.execute(text(_RANKS.format(base=base)), params).mappings():
        n = int(row["n"])
        if n < 3:
            out[int(row["b"])] = None
            continue
        sx, sy = float(row["sx"]), float(row["sy"])
        cov = float(row["sxy"]) - sx * sy / n
        vx = float(row["sxx"]) - sx * sx / n
        vy = float(row["syy"]) - sy * sy / n
        out[int(row["b"])] = cov / math.sqrt(vx * vy) if vx > 1e-12 and vy > 1e-12 else None
    return out
