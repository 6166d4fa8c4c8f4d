"""The judge egress policy: which API-key variables and which addresses a judge may use, checked
by the pure policy and again by the provider when it connects (after DNS)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from app.core.config import Settings
from app.llm import ProviderConfig, ProviderError
from app.llm.egress import (
    AddressKind,
    EgressPolicy,
    classify,
    ip_literal,
    key_var_problem,
    url_problem,
)
from app.llm.openai_compat import OpenAICompatProvider, PolicyResolver
from tests.support.judge_server import JudgeServer

DENY_ALL = EgressPolicy()
LOOPBACK_OK = EgressPolicy(allow_loopback=True)


# ---- API-key variables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "RS_SECRET_KEY",
        "RS_DATABASE_URL",
        "rs_secret_key",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "PGPASSWORD",
        "DATABASE_URL",
    ],
)
def test_the_apps_own_and_cloud_variables_are_never_allowed_even_when_listed(name: str) -> None:
    listed = EgressPolicy(key_vars=frozenset({name}))
    problem = key_var_problem(name, listed)
    assert problem is not None and "never a judge key" in problem
    assert "RS_JUDGE_KEY_" in problem  # the refusal says what is allowed


def test_key_variables_come_from_the_prefix_or_the_operators_list() -> None:
    assert key_var_problem("RS_JUDGE_KEY_OPENAI", DENY_ALL) is None
    assert key_var_problem(None, DENY_ALL) is None
    problem = key_var_problem("OPENAI_API_KEY", DENY_ALL)
    assert problem is not None and "RS_JUDGE_KEY_VARS" in problem
    listed = EgressPolicy(key_vars=frozenset({"OPENAI_API_KEY"}))
    assert key_var_problem("OPENAI_API_KEY", listed) is None
    assert "not the key itself" in (key_var_problem("sk-proj-abc123", listed) or "")
    assert key_var_problem("RS_JUDGE_KEY_", DENY_ALL) is not None  # the bare prefix is RS_*


def test_settings_read_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RS_JUDGE_KEY_VARS", "OPENAI_API_KEY, VLLM_API_KEY")
    monkeypatch.setenv("RS_OUTBOUND_ALLOW", "judge.internal,10.1.0.0/16")
    policy = EgressPolicy.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert policy.key_vars == {"OPENAI_API_KEY", "VLLM_API_KEY"}
    assert policy.allow_hosts == {"judge.internal"}
    assert policy.allow_networks == (ipaddress.ip_network("10.1.0.0/16"),)
    monkeypatch.setenv("RS_OUTBOUND_ALLOW", "not a host!")
    with pytest.raises(ValueError, match="neither a host name nor a CIDR"):
        Settings(_env_file=None)  # type: ignore[call-arg]


# ---- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1", "0x7f000001", "2130706433", "017700000001", "0x7f.0.0.1", "127.0.0.1."],
)
def test_numeric_ipv4_forms_are_read_as_inet_aton_does(host: str) -> None:
    assert ip_literal(host) == ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://169.254.1.1/v1",
        "http://[fe80::1]/v1",
        "http://[fd00:ec2::254]/v1",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://METADATA.GOOGLE.INTERNAL./v1",
        "http://[::ffff:169.254.169.254]/v1",
        "http://0.0.0.0:8000/v1",
        "http://0xa9fea9fe/v1",  # 169.254.169.254
    ],
)
def test_metadata_and_link_local_are_refused_whatever_the_operator_allows(url: str) -> None:
    everything = EgressPolicy(
        allow_loopback=True,
        allow_private=True,
        allow_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
        allow_hosts=frozenset({"metadata.google.internal"}),
    )
    problem = url_problem(url, everything)
    assert problem is not None and "never allowed" in problem


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/v1",
        "http://localhost:8000/v1",
        "http://api.localhost/v1",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://[::ffff:7f00:1]/v1",
        "http://0x7f000001/v1",
        "http://2130706433/v1",
        "http://017700000001/v1",
        "http://127.1/v1",
    ],
)
def test_loopback_in_any_notation_needs_the_operators_consent(url: str) -> None:
    problem = url_problem(url, DENY_ALL)
    assert problem is not None and "RS_OUTBOUND_ALLOW_LOOPBACK" in problem
    assert url_problem(url, LOOPBACK_OK) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/v1",
        "http://172.16.3.4/v1",
        "http://192.168.1.10:11434/v1",
        "http://100.64.0.1/v1",
        "http://[fd12:3456::1]/v1",
        "http://[64:ff9b::a00:5]/v1",  # NAT64 of 10.0.0.5
    ],
)
def test_private_ranges_need_the_operators_consent(url: str) -> None:
    problem = url_problem(url, LOOPBACK_OK)
    assert problem is not None and "RS_OUTBOUND_ALLOW_PRIVATE" in problem
    assert url_problem(url, EgressPolicy(allow_private=True)) is None


def test_the_allow_list_admits_named_hosts_and_networks_only() -> None:
    policy = EgressPolicy(
        allow_hosts=frozenset({"judge.internal"}),
        allow_networks=(ipaddress.ip_network("10.1.0.0/16"),),
    )
    assert url_problem("http://10.1.2.3/v1", policy) is None
    assert url_problem("http://10.2.0.1/v1", policy) is not None
    address = ipaddress.ip_address("10.9.9.9")
    assert classify(address) is AddressKind.PRIVATE
    from app.llm.egress import address_problem

    assert address_problem(address, policy, "judge.internal") is None
    assert address_problem(address, policy, "other.internal") is not None


def test_public_addresses_and_names_pass_and_odd_urls_are_refused() -> None:
    assert url_problem("https://api.openai.com/v1", DENY_ALL) is None
    assert url_problem("http://8.8.8.8/v1", DENY_ALL) is None
    assert url_problem("ftp://example.com/", DENY_ALL) is not None
    assert url_problem("http://user:pw@example.com/", DENY_ALL) is not None
    assert url_problem("http://exa%6dple.com/", DENY_ALL) is not None


# ---- the provider, at use time ----------------------------------------------------------------


def _config(base_url: str, **overrides: Any) -> ProviderConfig:
    return ProviderConfig(
        provider="openai_compat", model_id="judge-test", base_url=base_url, **overrides
    )


def test_a_stored_forbidden_key_variable_is_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    # A configuration saved before the allow-list existed: the provider refuses it itself.
    monkeypatch.setenv("RS_SECRET_KEY", "the-app-secret")
    with JudgeServer() as server:
        cfg = _config(server.base_url, api_key_env="RS_SECRET_KEY")
        listed = EgressPolicy(allow_loopback=True, key_vars=frozenset({"RS_SECRET_KEY"}))
        with pytest.raises(ProviderError) as caught:
            OpenAICompatProvider(cfg, egress=listed)
        assert caught.value.code == "key_var_refused" and not caught.value.retryable
        assert "the-app-secret" not in str(caught.value)
        assert server.requests == 0


def test_a_refused_base_url_is_refused_by_the_provider_too() -> None:
    with JudgeServer() as server:
        with pytest.raises(ProviderError) as caught:
            OpenAICompatProvider(_config(server.base_url), egress=DENY_ALL)
        assert caught.value.code == "outbound_refused"
        assert server.requests == 0


def _resolving(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real(address if host == name else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_a_name_that_resolves_to_a_refused_address_is_refused_when_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolving(monkeypatch, "judge.example.test", "127.0.0.1")
    with JudgeServer() as server:
        url = server.base_url.replace("127.0.0.1", "judge.example.test")
        cfg = _config(url)

        async def once(policy: EgressPolicy) -> Any:
            provider = OpenAICompatProvider(cfg, egress=policy)  # the name alone passes
            try:
                return await provider.complete(cfg.new_call("s", "u"))
            finally:
                await provider.aclose()

        with pytest.raises(ProviderError) as caught:
            asyncio.run(once(DENY_ALL))
        assert caught.value.code == "outbound_refused" and not caught.value.retryable
        assert "loopback" in caught.value.message
        assert server.requests == 0

        allowed = EgressPolicy(allow_hosts=frozenset({"judge.example.test"}))
        reply = asyncio.run(once(allowed))
        assert reply.attempts == 1 and server.requests == 1


def test_the_resolver_refuses_an_answer_with_any_forbidden_address() -> None:
    class Inner:
        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[Any]:
            return [
                {"hostname": host, "host": h, "port": port, "family": 2, "proto": 0, "flags": 0}
                for h in ("93.184.216.34", "169.254.169.254")
            ]

    async def resolve() -> Any:
        resolver = PolicyResolver(EgressPolicy(allow_private=True, allow_loopback=True))
        resolver._inner = Inner()  # type: ignore[assignment]
        return await resolver.resolve("rebinding.example", 80)

    with pytest.raises(OSError, match="never allowed"):
        asyncio.run(resolve())


def test_redirects_are_not_followed() -> None:
    from aiohttp import web

    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect("http://169.254.169.254/latest/meta-data/")

    async def scenario() -> ProviderError:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", redirect)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        cfg = _config(f"http://127.0.0.1:{port}/v1")
        provider = OpenAICompatProvider(cfg, egress=LOOPBACK_OK)
        try:
            await provider.complete(cfg.new_call("s", "u"))
        except ProviderError as exc:
            return exc
        finally:
            await provider.aclose()
            await runner.cleanup()
        raise AssertionError("a redirect was followed")

    error = asyncio.run(scenario())
    assert (error.code, error.status, error.retryable) == ("redirect", 307, False)
    assert hits == ["/v1/chat/completions"]
