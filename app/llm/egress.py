"""What a judge configuration may reach and read: the outbound-URL policy and the API-key
variable allow-list, both set by the operator (docs/configuration.md, "Judge endpoints").

Pure module: no web, database or HTTP-client imports. Save-time checks call `url_problem` and
`key_var_problem`; the provider calls them again at use time and `address_problem` on every
address a host name resolves to, so what is connected is what was checked.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# A judge's API key variable may always be named with this prefix (RS_JUDGE_KEY_OPENAI, ...).
KEY_VAR_PREFIX = "RS_JUDGE_KEY_"
# Never readable by a judge configuration, even when an operator lists them: the app's own
# settings (its secret key and database URL) and the credentials of cloud SDKs and databases.
FORBIDDEN_KEY_PREFIXES: tuple[str, ...] = (
    "RS_",
    "AWS_",
    "AMAZON_",
    "AZURE_",
    "ARM_",
    "MSI_",
    "IDENTITY_",
    "GOOGLE_",
    "GCLOUD_",
    "GCP_",
    "GCE_",
    "CLOUDSDK_",
    "ALIBABA_CLOUD_",
    "ALICLOUD_",
    "OCI_",
    "DIGITALOCEAN_",
    "KUBERNETES_",
    "PG",
)
FORBIDDEN_KEY_NAMES = frozenset({"DATABASE_URL", "SECRET_KEY"})

# Cloud instance metadata services: never a judge, whatever the operator allows.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.tencentyun.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


class AddressKind(StrEnum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    METADATA = "metadata"
    RESERVED = "reserved"


ALWAYS_REFUSED = frozenset({AddressKind.LINK_LOCAL, AddressKind.METADATA, AddressKind.RESERVED})


@dataclass(frozen=True)
class EgressPolicy:
    """The operator's choices. The default refuses loopback and private addresses and allows
    only RS_JUDGE_KEY_* key variables."""

    allow_loopback: bool = False
    allow_private: bool = False
    # Host names (exact, case-insensitive) and networks that may be loopback or private.
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    # Extra API-key variable names beyond the RS_JUDGE_KEY_ prefix.
    key_vars: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Any) -> EgressPolicy:
        """From app.core.config.Settings (duck-typed so this module stays free of app imports)."""
        hosts, networks = parse_allow_list(settings.outbound_allow)
        return cls(
            allow_loopback=bool(settings.outbound_allow_loopback),
            allow_private=bool(settings.outbound_allow_private),
            allow_hosts=hosts,
            allow_networks=networks,
            key_vars=frozenset(settings.judge_key_vars),
        )


def parse_allow_list(
    entries: list[str] | tuple[str, ...],
) -> tuple[frozenset[str], tuple[Any, ...]]:
    """Split RS_OUTBOUND_ALLOW entries into host names and networks; a bad entry raises."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.match(entry):
            raise ValueError(f"RS_OUTBOUND_ALLOW: {raw!r} is neither a host name nor a CIDR")
        hosts.add(entry)
    return frozenset(hosts), tuple(networks)


# ---- API-key variables ------------------------------------------------------------------------


def key_var_allowed_text(policy: EgressPolicy) -> str:
    listed = ", ".join(sorted(n for n in policy.key_vars if key_var_forbidden(n) is None))
    extra = (
        f" or one the operator listed in RS_JUDGE_KEY_VARS ({listed})"
        if listed
        else (" (the operator can allow other names with RS_JUDGE_KEY_VARS)")
    )
    return f"a name starting with {KEY_VAR_PREFIX}{extra}"


def key_var_forbidden(name: str) -> str | None:
    """Why `name` can never hold a judge key (the app's or a cloud provider's variable)."""
    upper = name.upper()
    if upper.startswith(KEY_VAR_PREFIX) and len(upper) > len(KEY_VAR_PREFIX):
        return None
    if upper in FORBIDDEN_KEY_NAMES:
        return f"{name} holds a secret of this server, never a judge key"
    for prefix in FORBIDDEN_KEY_PREFIXES:
        if upper.startswith(prefix):
            whose = "Rubric Studio's own settings" if prefix == "RS_" else "cloud or database"
            return f"{name} is one of {whose} variables ({prefix}*), never a judge key"
    return None


def key_var_problem(name: str | None, policy: EgressPolicy) -> str | None:
    """None if a judge may send the value of environment variable `name`; else why not."""
    if not name:
        return None
    if not _ENV_NAME.match(name):
        return "must be the NAME of an environment variable, not the key itself"
    forbidden = key_var_forbidden(name)
    if forbidden is not None:
        return f"{forbidden}; use {key_var_allowed_text(policy)}"
    if name.startswith(KEY_VAR_PREFIX) or name in policy.key_vars:
        return None
    return f"{name} is not an allowed key variable; use {key_var_allowed_text(policy)}"


# ---- outbound addresses -----------------------------------------------------------------------


def parse_ipv4_numeric(host: str) -> ipaddress.IPv4Address | None:
    """The address inet_aton (and so getaddrinfo) reads from `host`: 127.1, 0x7f000001,
    2130706433, 017700000001, 0x7f.0.0.1 ... None if it is not a numeric IPv4 form."""
    parts = host.rstrip(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10) if part.isdigit() else -1)
        except ValueError:
            return None
        if values[-1] < 0:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL host names literally (any IPv4/IPv6 notation), or None for a name."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        return parse_ipv4_numeric(bare)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip))
    return None


def classify(ip: IPAddress) -> AddressKind:
    """What kind of address `ip` is, looking through IPv4-in-IPv6 wrappings."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return classify(inner)
    if ip in METADATA_ADDRESSES:
        return AddressKind.METADATA
    if ip.is_link_local:
        return AddressKind.LINK_LOCAL
    if ip.is_loopback:
        return AddressKind.LOOPBACK
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return AddressKind.RESERVED
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return AddressKind.RESERVED
    if not ip.is_global:
        return AddressKind.PRIVATE
    return AddressKind.PUBLIC


def _allowed_by_list(ip: IPAddress, host: str | None, policy: EgressPolicy) -> bool:
    if host is not None and host.lower().rstrip(".") in policy.allow_hosts:
        return True
    candidates = [ip]
    inner = _embedded_ipv4(ip)
    if inner is not None:
        candidates.append(inner)
    return any(c in net for c in candidates for net in policy.allow_networks)


def address_problem(ip: IPAddress, policy: EgressPolicy, host: str | None = None) -> str | None:
    """None if a judge call may connect to `ip` (reached through `host`); else why not."""
    kind = classify(ip)
    shown = f"{host} ({ip})" if host and host.strip("[]") != str(ip) else str(ip)
    if kind in ALWAYS_REFUSED:
        return (
            f"{shown} is a {kind} address (cloud metadata and link-local addresses are never "
            "allowed)"
        )
    if kind is AddressKind.PUBLIC or _allowed_by_list(ip, host, policy):
        return None
    if kind is AddressKind.LOOPBACK and not policy.allow_loopback:
        return (
            f"{shown} is a loopback address (this server); the operator can allow local judges "
            "with RS_OUTBOUND_ALLOW_LOOPBACK=true or list the host in RS_OUTBOUND_ALLOW"
        )
    if kind is AddressKind.PRIVATE and not policy.allow_private:
        return (
            f"{shown} is a private-network address; the operator can allow it with "
            "RS_OUTBOUND_ALLOW_PRIVATE=true or list the host or its network in RS_OUTBOUND_ALLOW"
        )
    return None


def url_problem(url: str | None, policy: EgressPolicy) -> str | None:
    """None if a judge may be called at `url` as far as can be told without DNS; else why not.
    Host names are checked again after resolution, when connecting."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    host = (parts.hostname or "").lower()
    if not host:
        return "has no host name"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (name a key variable instead)"
    ip = ip_literal(host)
    if ip is not None:
        return address_problem(ip, policy, host)
    name = host.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = "%"
    if "%" in name or not _HOST_NAME.match(ascii_name):
        return f"{host} is not a valid host name"
    if name in METADATA_HOSTS:
        return f"{name} is a cloud metadata service (never allowed)"
    if name == "localhost" or name.endswith(".localhost"):
        return address_problem(ipaddress.IPv4Address("127.0.0.1"), policy, name)
    return None
