"""The check's configuration file (TOML; every path relative to the file) and its variants.

```toml
issuer = "https://as.example.com"
plan = "security-profile"               # or "message-signing", "client-credentials" (--plan)
ca_file = "ca.pem"                      # optional CA bundle for the AS and the resource server
[resource]                              # optional
url = "https://api.example.com/accounts" # or "userinfo"
method = "GET"
[login]
method = "html-form"                    # html-form | chromium | manual
username = "alice"
password = "..."
[[clients]]                             # two per variant, with different credentials
client_id = "c1"
jwk_file = "c1.private.jwk.json"        # private_key_jwt
cert_file = "c1.pem"                    # mTLS client auth / certificate-bound tokens
cert_key_file = "c1.key"
redirect_uri = "https://client.example/cb"
scope = "openid offline_access accounts"
variants = ["private_key_jwt+dpop"]     # optional: the client-auth + sender pairs it is
                                        # registered for (default: all it has credentials for);
                                        # "private_key_jwt+dpop+jar+jarm" for Message Signing,
                                        # "private_key_jwt+dpop+cc" for client credentials (no
                                        # redirect_uri needed then)
```

Two plans (the OIDF suite's): ``security-profile`` (``fapi2-security-profile-final-test-plan``,
unsigned requests, plain responses) and ``message-signing`` (``fapi2-message-signing-final-test-plan``
with ``fapi_request_method=signed_non_repudiation`` and ``fapi_response_mode=jarm``). A server
registers a client either for signed requests and JARM or not (``require_signed_request_object``,
``response_modes``), so a Message Signing variant needs clients declared for it: the pair with
``+jar+jarm``, and a ``jwk_file`` (the request object is signed with it, also for mTLS clients).

A third: ``client-credentials`` (``fapi2-security-profile-final-client-credentials-grant-test-plan``,
``fapi_profile=fapi_client_credentials_grant``, plain OAuth only): the client gets its tokens with
the client credentials grant (RFC 6749 4.4), so its clients are declared with ``+cc`` and need no
``redirect_uri`` and no user.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from corridor.core.jose import JoseFailure

CLIENT_AUTHS = ("private_key_jwt", "mtls")
SENDERS = ("dpop", "mtls")
LOGIN_METHODS = ("html-form", "chromium", "manual")
PLANS = ("security-profile", "message-signing", "client-credentials")
#: The suite's FAPI2AuthRequestMethod and FAPI2ResponseMode values.
UNSIGNED, SIGNED = "unsigned", "signed_non_repudiation"
PLAIN_RESPONSE, JARM = "plain_response", "jarm"
#: What a Message Signing pair adds to ``client_auth+sender`` in ``variants = [...]``.
MESSAGE_SIGNING_SUFFIX = "+jar+jarm"
#: The suite's FAPI2FinalOPProfile values this check runs, and what a client credentials pair adds.
PLAIN_FAPI, CLIENT_CREDENTIALS = "plain_fapi", "fapi_client_credentials_grant"
CLIENT_CREDENTIALS_SUFFIX = "+cc"


class ConfigError(ValueError):
    """A configuration the check cannot run with (exit status 2, one line)."""


@dataclass(frozen=True)
class Variant:
    """One combination of the suite's variant parameters (``fapi_profile=plain_fapi``), with
    the Message Signing plan's ``fapi_request_method`` and ``fapi_response_mode``."""

    client_auth: str
    sender: str
    openid: bool
    request_method: str = UNSIGNED
    response_mode: str = PLAIN_RESPONSE
    #: The suite's ``fapi_profile``: ``plain_fapi`` (the code flow) or ``fapi_client_credentials_grant``.
    profile: str = PLAIN_FAPI

    @property
    def client_credentials(self) -> bool:
        """The client credentials grant (RFC 6749 4.4) instead of PAR and the code flow."""
        return self.profile == CLIENT_CREDENTIALS

    @property
    def signed(self) -> bool:
        """JAR (RFC 9101) at PAR: every parameter in a signed request object (FAPI2-MS-FINAL-5.3.2)."""
        return self.request_method == SIGNED

    @property
    def jarm(self) -> bool:
        """JARM: ``response_mode=jwt``, the response a JWT signed by the AS (FAPI2-MS-FINAL-5.4.2)."""
        return self.response_mode == JARM

    @property
    def plan(self) -> str:
        if self.client_credentials:
            return "client-credentials"
        return "message-signing" if self.signed or self.jarm else "security-profile"

    @property
    def pair(self) -> str:
        """What a client's ``variants = [...]`` names: ``client_auth+sender`` (+``jar``, +``jarm``)."""
        return (
            f"{self.client_auth}+{self.sender}"
            + ("+jar" if self.signed else "")
            + ("+jarm" if self.jarm else "")
            + (CLIENT_CREDENTIALS_SUFFIX if self.client_credentials else "")
        )

    @property
    def name(self) -> str:
        name = f"{self.client_auth} + {self.sender} + {'openid' if self.openid else 'plain_oauth'}"
        if self.signed:
            name += f" + {SIGNED}"
        if self.jarm:
            name += f" + {JARM}"
        if self.client_credentials:
            name += f" + {CLIENT_CREDENTIALS}"
        return name


def plan_variant(variant: Variant, plan: str) -> Variant:
    """``variant`` in ``plan``: Message Signing is signed_non_repudiation + jarm; client
    credentials is plain OAuth (no user, so no openid) with the unsigned, plain defaults."""
    if plan == "message-signing":
        return dataclasses.replace(variant, request_method=SIGNED, response_mode=JARM, profile=PLAIN_FAPI)
    profile = CLIENT_CREDENTIALS if plan == "client-credentials" else PLAIN_FAPI
    return dataclasses.replace(
        variant,
        request_method=UNSIGNED,
        response_mode=PLAIN_RESPONSE,
        profile=profile,
        openid=variant.openid and profile == PLAIN_FAPI,
    )


ALL_VARIANTS = tuple(
    Variant(auth, sender, openid) for auth in CLIENT_AUTHS for sender in SENDERS for openid in (True, False)
)
DEFAULT_VARIANT = Variant("private_key_jwt", "dpop", True)


def all_variants_of(plan: str = "security-profile") -> tuple[Variant, ...]:
    """The plan's variants (8; 4 for client credentials, which has no openid variant)."""
    return tuple(dict.fromkeys(plan_variant(variant, plan) for variant in ALL_VARIANTS))


@dataclass(frozen=True)
class ClientConfig:
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    #: The private JWK for private_key_jwt (its alg and kid are used), if any.
    jwk: Mapping[str, Any] | None = None
    cert_file: Path | None = None
    cert_key_file: Path | None = None
    #: ``client_auth+sender`` pairs this client is registered for.
    variants: frozenset[str] = frozenset()

    def fits(self, variant: Variant) -> bool:
        return variant.pair in self.variants


@dataclass(frozen=True)
class ResourceConfig:
    #: An https URL, or ``userinfo`` for the AS's own userinfo endpoint.
    url: str
    method: str = "GET"


@dataclass(frozen=True)
class LoginConfig:
    method: str
    username: str = ""
    password: str = ""


@dataclass(frozen=True)
class CheckConfig:
    path: Path
    issuer: str
    login: LoginConfig
    clients: tuple[ClientConfig, ...]
    ca_file: Path | None = None
    resource: ResourceConfig | None = None
    #: The plan a run uses unless ``--plan`` says otherwise.
    plan: str = "security-profile"

    def clients_for(self, variant: Variant) -> tuple[ClientConfig, ClientConfig]:
        """The two clients of a variant; :class:`ConfigError` when there are fewer."""
        fitting = [client for client in self.clients if client.fits(variant)]
        if len(fitting) < 2:
            raise ConfigError(
                f"variant {variant.name} needs two [[clients]] registered for {variant.pair} "
                f"(found {len(fitting)})"
            )
        return fitting[0], fitting[1]

    def allowed_hosts(self) -> frozenset[str]:
        """Only loopback and the configured issuer and resource hosts are contacted."""
        hosts = {"127.0.0.1", "::1", "localhost", (urlsplit(self.issuer).hostname or "").lower()}
        if self.resource is not None and self.resource.url != "userinfo":
            hosts.add((urlsplit(self.resource.url).hostname or "").lower())
        return frozenset(hosts)


def _https_url(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a URL")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.fragment:
        raise ConfigError(f"{what} must be an https URL without fragment: {value!r}")
    return value


def _path(base: Path, value: Any, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a file name")
    path = (base / value).resolve()
    if not path.is_file():
        raise ConfigError(f"{what}: no such file {path}")
    return path


def _client(base: Path, index: int, data: Any) -> ClientConfig:
    what = f"[[clients]] #{index + 1}"
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a table")
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigError(f"{what}: client_id is required")
    redirect_uri = data.get("redirect_uri")
    declared_pairs = data.get("variants")
    only_cc = (
        isinstance(declared_pairs, list)
        and bool(declared_pairs)
        and all(isinstance(v, str) and v.endswith(CLIENT_CREDENTIALS_SUFFIX) for v in declared_pairs)
    )
    if redirect_uri is None and only_cc:
        redirect_uri = ""  # RFC 6749 4.4: a client credentials client has no redirect URI
    elif not isinstance(redirect_uri, str) or not redirect_uri.startswith(("https://", "http://127.0.0.1")):
        raise ConfigError(f"{what}: redirect_uri must be an https URL")
    scope = data.get("scope", "")
    if not isinstance(scope, str) or len(scope.split()) < 2:
        raise ConfigError(f"{what}: scope needs at least two scopes")
    jwk = None
    if "jwk_file" in data:
        jwk_path = _path(base, data["jwk_file"], f"{what} jwk_file")
        try:
            jwk = json.loads(jwk_path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{what} jwk_file is not JSON") from exc
        if isinstance(jwk, dict) and "keys" in jwk and isinstance(jwk["keys"], list) and jwk["keys"]:
            jwk = jwk["keys"][0]
        if not isinstance(jwk, dict) or "d" not in jwk:
            raise ConfigError(f"{what} jwk_file must hold a private JWK")
        try:
            from corridor.core.jose import SigningKey

            SigningKey(jwk)
        except (JoseFailure, ValueError, TypeError) as exc:
            raise ConfigError(f"{what} jwk_file: {exc}") from exc
    cert_file = cert_key = None
    if "cert_file" in data or "cert_key_file" in data:
        cert_file = _path(base, data.get("cert_file"), f"{what} cert_file")
        cert_key = _path(base, data.get("cert_key_file"), f"{what} cert_key_file")
    possible = {
        f"{auth}+{sender}"
        for auth in CLIENT_AUTHS
        for sender in SENDERS
        if (jwk is not None if auth == "private_key_jwt" else cert_file is not None)
        and (sender == "dpop" or cert_file is not None)
    }
    # Message Signing: the request object is signed with the jwk_file's key (every client auth).
    signing = {pair + MESSAGE_SIGNING_SUFFIX for pair in possible if jwk is not None}
    credentials = {pair + CLIENT_CREDENTIALS_SUFFIX for pair in possible}
    declared = data.get("variants")
    if declared is None:
        # A client registered for signed requests is declared so; the default is the plain plan.
        variants = frozenset(possible)
    else:
        if not isinstance(declared, list) or not all(isinstance(v, str) for v in declared):
            raise ConfigError(f'{what}: variants must be a list like ["private_key_jwt+dpop"]')
        known = {f"{a}+{s}" for a in CLIENT_AUTHS for s in SENDERS}
        suffixed = {
            k + suffix for k in known for suffix in (MESSAGE_SIGNING_SUFFIX, CLIENT_CREDENTIALS_SUFFIX)
        }
        unknown = [v for v in declared if v not in known | suffixed]
        if unknown:
            raise ConfigError(f"{what}: unknown variant {unknown[0]!r}")
        missing = [v for v in declared if v not in possible | signing | credentials]
        if missing:
            lacking = (
                "a jwk_file (to sign request objects)"
                if missing[0] in {k + MESSAGE_SIGNING_SUFFIX for k in known}
                and missing[0].removesuffix(MESSAGE_SIGNING_SUFFIX) in possible
                else "credentials"
            )
            raise ConfigError(f"{what}: variant {missing[0]} needs {lacking} the client lacks")
        variants = frozenset(declared)
    return ClientConfig(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=tuple(scope.split()),
        jwk=jwk,
        cert_file=cert_file,
        cert_key_file=cert_key,
        variants=variants,
    )


def parse_config(data: Mapping[str, Any], base: Path, path: Path | None = None) -> CheckConfig:
    """Build and validate a :class:`CheckConfig` from parsed TOML."""
    issuer = _https_url(data.get("issuer"), "issuer")
    plan = data.get("plan", "security-profile")
    if plan not in PLANS:
        raise ConfigError(f"plan must be one of {', '.join(PLANS)}")
    ca_file = _path(base, data["ca_file"], "ca_file") if "ca_file" in data else None
    resource = None
    if "resource" in data:
        table = data["resource"]
        if not isinstance(table, dict):
            raise ConfigError("[resource] must be a table")
        url = table.get("url")
        if url != "userinfo":
            url = _https_url(url, "[resource] url")
        method = str(table.get("method", "GET")).upper()
        if method not in ("GET", "POST"):
            raise ConfigError("[resource] method must be GET or POST")
        resource = ResourceConfig(url, method)
    login_table = data.get("login", {})
    if not isinstance(login_table, dict):
        raise ConfigError("[login] must be a table")
    method = login_table.get("method", "html-form")
    if method not in LOGIN_METHODS:
        raise ConfigError(f"[login] method must be one of {', '.join(LOGIN_METHODS)}")
    username, password = login_table.get("username", ""), login_table.get("password", "")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ConfigError("[login] username and password must be strings")
    if method != "manual" and not username:
        raise ConfigError(f"[login] {method} needs username and password")
    clients_data = data.get("clients")
    if not isinstance(clients_data, list) or len(clients_data) < 2:
        raise ConfigError("at least two [[clients]] are needed (the mix-up modules use two)")
    clients = tuple(_client(base, i, c) for i, c in enumerate(clients_data))
    ids = [c.client_id for c in clients]
    if len(set(ids)) != len(ids):
        raise ConfigError("every [[clients]] needs its own client_id")
    return CheckConfig(
        path=path or base,
        issuer=issuer,
        login=LoginConfig(method, username, password),
        clients=clients,
        ca_file=ca_file,
        resource=resource,
        plan=plan,
    )


def load_config(path: Path) -> CheckConfig:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(data, path.resolve().parent, path)


def select_variants(
    config: CheckConfig,
    *,
    all_variants: bool,
    client_auth: str | None,
    sender: str | None,
    openid: bool | None,
    plan: str | None = None,
) -> Sequence[Variant]:
    """The variants of a run: ``plan`` (default: the configuration's), all 8 or the one asked for."""
    chosen = plan or config.plan
    if chosen not in PLANS:
        raise ConfigError(f"plan must be one of {', '.join(PLANS)}")
    if chosen == "client-credentials" and openid:
        raise ConfigError("the client-credentials plan has no openid variant (no user: plain OAuth only)")
    if all_variants:
        return all_variants_of(chosen)
    variant = Variant(
        client_auth or DEFAULT_VARIANT.client_auth,
        sender or DEFAULT_VARIANT.sender,
        DEFAULT_VARIANT.openid if openid is None else openid,
    )
    return (plan_variant(variant, chosen),)
