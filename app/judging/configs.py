"""Judge configurations: create, update, delete, their snapshot and egress checks, and the test
connection through the judge's real provider code. Public functions commit once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.judging import verdicts as judge_engine  # pure: plans, prompts, costs (not the executor)
from app.judging.models import JudgeConfig, JudgeRun
from app.judging.schemas import JudgeConfigInput
from app.judging.status import short_error
from app.llm.base import ProviderError
from app.llm.egress import EgressPolicy, key_var_problem, url_problem
from app.projects.models import Project

# ---- judge configurations ---------------------------------------------------------------------


def list_configs(session: Session, project_id: int) -> list[JudgeConfig]:
    query = select(JudgeConfig).where(JudgeConfig.project_id == project_id)
    return list(session.exec(query.order_by(col(JudgeConfig.name))))


def get_config(session: Session, project_id: int, config_id: int) -> JudgeConfig:
    config = session.get(JudgeConfig, config_id)
    if config is None or config.project_id != project_id:
        raise NotFound("No such judge configuration in this project.")
    return config


def snapshot_of(config: JudgeConfig) -> dict[str, Any]:
    """The configuration as a run keeps it: later edits do not change a run already started."""
    return {
        "id": config.id,
        "name": config.name,
        "provider": config.provider,
        "model_id": config.model_id,
        "base_url": config.base_url,
        "api_key_env": config.api_key_env,
        "region": config.region,
        "params": dict(config.params or {}),
        "concurrency": config.concurrency,
        "timeout_s": config.timeout_s,
        "max_attempts": config.max_attempts,
        "price_input_per_1k": config.price_input_per_1k,
        "price_output_per_1k": config.price_output_per_1k,
        "revision": config.revision,
    }


def _apply(config: JudgeConfig, data: JudgeConfigInput) -> None:
    config.name = data.name
    config.provider = data.provider
    config.model_id = data.model_id
    config.base_url = data.base_url if data.provider == "openai_compat" else None
    config.api_key_env = data.api_key_env if data.provider == "openai_compat" else None
    config.region = data.region if data.provider == "bedrock" else None
    config.params = data.params()
    config.concurrency = data.concurrency
    config.timeout_s = data.timeout_s
    config.max_attempts = data.max_attempts
    config.price_input_per_1k = data.price_input_per_1k
    config.price_output_per_1k = data.price_output_per_1k


def _check_name_free(
    session: Session, project_id: int, name: str, except_id: int | None = None
) -> None:
    query = select(JudgeConfig.id).where(
        JudgeConfig.project_id == project_id, JudgeConfig.name == name
    )
    existing = session.exec(query).first()
    if existing is not None and existing != except_id:
        raise Conflict(f"A judge configuration named “{name}” already exists in this project.")


def check_egress(data: JudgeConfigInput, egress: EgressPolicy) -> None:
    """Refuse a base URL or API-key variable the operator's policy does not allow."""
    if data.provider != "openai_compat":
        return
    problems = []
    url = url_problem(data.base_url, egress)
    if url is not None:
        problems.append({"field": "base_url", "message": f"Base URL refused: {url}."})
    key = key_var_problem(data.api_key_env, egress)
    if key is not None:
        problems.append({"field": "api_key_env", "message": f"API key variable refused: {key}."})
    if problems:
        raise InvalidInput(
            "This server's operator does not allow this judge endpoint or key variable.",
            details=problems,
        )


def create_config(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    data: JudgeConfigInput,
    egress: EgressPolicy,
) -> JudgeConfig:
    check_egress(data, egress)
    project_id = project.id or 0
    _check_name_free(session, project_id, data.name)
    config = JudgeConfig(project_id=project_id, name=data.name, provider=data.provider)
    _apply(config, data)
    session.add(config)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="judge_config.create",
        object_type="judge_config",
        object_id=config.id,
        project_id=project_id,
        summary=f"created judge configuration {config.name} ({config.provider} {config.model_id})",
        details={"after": snapshot_of(config)},
    )
    session.commit()
    return config


def update_config(
    session: Session,
    project: Project,
    config: JudgeConfig,
    *,
    actor: User | None,
    expected_revision: int,
    data: JudgeConfigInput,
    egress: EgressPolicy,
) -> JudgeConfig:
    check_egress(data, egress)
    if config.revision != expected_revision:
        raise Conflict(
            "Someone else saved this judge configuration since you opened it. Reload to see "
            "their changes; your edits were not saved."
        )
    _check_name_free(session, config.project_id, data.name, except_id=config.id)
    before = snapshot_of(config)
    _apply(config, data)
    config.revision += 1
    config.updated_at = utcnow()
    session.add(config)
    session.flush()
    after = snapshot_of(config)
    changed = sorted(k for k in after if k != "revision" and after[k] != before[k])
    audit_service.record(
        session,
        actor=actor,
        action="judge_config.update",
        object_type="judge_config",
        object_id=config.id,
        project_id=config.project_id,
        summary=f"changed judge configuration {config.name}: {', '.join(changed) or 'nothing'}",
        details={"before": before, "after": after},
    )
    session.commit()
    return config


def delete_config(
    session: Session, project: Project, config: JudgeConfig, *, actor: User | None
) -> None:
    used = session.exec(
        select(func.count()).select_from(JudgeRun).where(JudgeRun.judge_config_id == config.id)
    ).one()
    if used:
        raise Conflict(
            f"“{config.name}” was used by {used} judge run(s) and is kept so they stay "
            "explainable. Create a new configuration instead of deleting this one."
        )
    audit_service.record(
        session,
        actor=actor,
        action="judge_config.delete",
        object_type="judge_config",
        object_id=config.id,
        project_id=config.project_id,
        summary=f"deleted judge configuration {config.name}",
        details={"before": snapshot_of(config)},
    )
    session.delete(config)
    session.commit()


# ---- test connection --------------------------------------------------------------------------

CONNECTION_SYSTEM = "You are answering a connection check from Rubric Studio."
CONNECTION_PROMPT = "Reply with the single word OK."
CONNECTION_TIMEOUT_S = 30.0
CONNECTION_MAX_TOKENS = 16


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of one tiny request through the judge's real provider code."""

    ok: bool
    answer: str = ""
    error: str = ""
    model: str = ""
    latency_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    test_double: bool = False


def check_connection(
    config: JudgeConfig, provider_factory: judge_engine.ProviderFactory | None = None
) -> ConnectionCheck:
    """Send one short request with this configuration's provider, model and key, once (no
    retries, a short timeout), and say what came back: the answer or the error, short and on
    one line. Nothing is stored."""
    if config.provider not in ("openai_compat", "bedrock"):
        raise InvalidInput("This judge's verdicts are imported; there is no endpoint to test.")
    cfg = judge_engine.provider_config(snapshot_of(config)).model_copy(
        update={
            "max_attempts": 1,
            "max_tokens": CONNECTION_MAX_TOKENS,
            "timeout_s": min(CONNECTION_TIMEOUT_S, config.timeout_s or CONNECTION_TIMEOUT_S),
        }
    )
    factory = provider_factory or judge_engine.default_provider
    call = cfg.new_call(CONNECTION_SYSTEM, CONNECTION_PROMPT, metadata={"purpose": "connection"})

    async def send() -> Any:
        provider = factory(cfg)
        try:
            return await provider.complete(call)
        finally:
            await provider.aclose()

    try:
        reply = asyncio.run(send())
    except ProviderError as exc:
        return ConnectionCheck(ok=False, error=_connection_error(exc.code, exc.message))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the answer shown
        return ConnectionCheck(ok=False, error=_connection_error(type(exc).__name__, str(exc)))
    return ConnectionCheck(
        ok=True,
        answer=short_error(reply.text, 200),
        model=short_error(reply.model, 100),
        latency_ms=reply.latency_ms,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        test_double=reply.structured_mode == "fake",
    )


def _connection_error(code: str, message: str) -> str:
    text = short_error(message, 240) or "no details were given"
    return f"{short_error(code, 40)}: {text}" if code and code != "error" else text
