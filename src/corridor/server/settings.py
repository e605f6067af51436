"""One settings object (design.md 6): defaults, then a TOML file, then ``CORRIDOR_*``
environment variables. Every setting is documented here, once."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from corridor.core.acr import AcrLevels
from corridor.server.usernames import UsernameError, enforce

if TYPE_CHECKING:
    from corridor.store.sql import Store


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORRIDOR_", extra="forbid")

    #: The issuer identifier (RFC 8414 2). Every absolute URL and DPoP ``htu`` derives from it.
    issuer: str = "https://localhost:8443"
    #: Address and port the TLS listener binds.
    host: str = "127.0.0.1"
    port: int = 8443
    #: Where Corridor keeps its SQLite database (unless database_url is set) and, in dev mode or
    #: behind a TLS proxy without tls_cert_file, its local CA and certificate; dev mode's demo files.
    data_dir: Path = Path(".corridor")
    #: SQLAlchemy URL; empty means the SQLite file ``<data_dir>/corridor.db``. For scale-out,
    #: ``postgresql://user@host/db`` (psycopg 3), shared by every instance.
    database_url: str = ""
    #: Connections per instance (PostgreSQL): the pool keeps ``database_pool_size`` open and
    #: opens up to ``database_max_overflow`` more under load. Keep
    #: instances x (pool size + overflow) below the server's ``max_connections``.
    database_pool_size: int = Field(10, ge=1, le=200)
    database_max_overflow: int = Field(10, ge=0, le=200)
    #: TLS certificate and key (PEM). Empty in dev mode: a local CA issues them on first start.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: The mTLS listener (RFC 8705 5 endpoint aliases): it asks for an optional client certificate.
    mtls_host: str = "127.0.0.1"
    mtls_port: int = 8445
    #: Public base URL of the alias endpoints; empty means the issuer's host on ``mtls_port``.
    mtls_base_url: str = ""
    #: CA bundle (PEM) for tls_client_auth (PKI) client certificates.
    mtls_ca_file: str = ""
    #: Proxy addresses (IPs or CIDRs) whose Client-Cert / X-SSL-Client-Escaped-Cert headers
    #: are believed (RFC 9440); from anyone else those headers are stripped.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Extra CA bundle (PEM) trusted when the AS calls out, e.g. to fetch a client's jwks_uri.
    trust_ca_file: str = ""
    #: Dev mode: a demo user, demo client and demo resource server, and a local CA for TLS
    #: (never for real users). Unset: on only when the issuer is a loopback URL and no config
    #: file is given (``corridor serve --dev`` asks for it anyway); otherwise production mode,
    #: which needs tls_cert_file and tls_key_file, or proxy mode (trusted_proxies set, both
    #: listeners on loopback: a TLS proxy on this host in front, deploy/nginx).
    dev_mode: bool | None = None
    #: Whether a user who has only a password may add their first passkey from the sign-in pages
    #: (issue 13 C4: then a password alone reaches acr ``passkey``). Off by default outside dev
    #: mode (unset means ``dev_mode``): the first strong factor is bound through an operator's
    #: single-use link (``corridor user enrol NAME``, ``enrolment_link_lifetime``) or
    #: ``corridor user totp NAME``. A user with a second factor proves it before adding a passkey.
    self_service_enrolment: bool | None = None
    #: How long an enrolment link of ``corridor user enrol`` may be used (once), in seconds.
    enrolment_link_lifetime: int = Field(900, ge=60, le=86_400)
    #: Key rotation (``corridor keys rotate``): a new key is published at once and signs only
    #: after this many seconds, so resource servers (which cache the JWKS, 300 s at most by its
    #: Cache-Control) know it before the first token it signs arrives.
    key_activation_delay: int = Field(600, ge=0)
    #: How often an instance re-reads the signing keys (rotations made elsewhere).
    key_refresh_interval: float = Field(10.0, gt=0, le=300)
    #: How long an instance may keep using a client or resource-server registration that another
    #: process changed or removed (its own changes count at once). 0 turns the cache off.
    registration_cache_seconds: float = Field(2.0, ge=0, le=60)
    #: Users who may sign in at /admin/trace and read the evidence trail (issue 8).
    admin_users: list[str] = Field(default_factory=list)
    #: Administrators must pass a second factor (a TOTP code) after the password (issue 13 C3);
    #: one without any is refused. Unset: on, except in dev mode. Whatever this says, an admin
    #: who has a second factor always gives it (the strongest enrolled factor).
    admin_require_mfa: bool | None = None
    #: An admin session ends after this many seconds without a page view, and this long after
    #: sign-in in any case (NIST SP 800-63B 4.2.3 asks at most 30 min idle at AAL2).
    admin_session_idle: int = Field(900, ge=60, le=86_400)
    admin_session_lifetime: int = Field(1800, ge=60, le=86_400)
    #: How often an instance signs the heads of the audit chains (audit/chain.py checkpoints).
    audit_checkpoint_interval: float = Field(300.0, gt=0)
    #: Bounded time on every listener (design.md 5c, issue 13 B2): seconds from the TLS handshake
    #: (or from the first byte after an idle keep-alive) to the end of the request line and
    #: headers, seconds from there to the end of the body, and seconds an idle keep-alive
    #: connection stays open. A connection over any of them is closed (408 when nothing was
    #: answered yet). The request line and headers are capped at 16 KiB in all (431 beyond).
    request_head_timeout: float = Field(10.0, gt=0, le=300)
    request_body_timeout: float = Field(30.0, gt=0, le=600)
    keep_alive_timeout: float = Field(5.0, gt=0, le=300)
    #: Unauthenticated refusals (no client or token authenticated yet) recorded one by one per
    #: source address (IPv6: its /64) and kind (event, error) in each window; the rest of the
    #: window is counted into one aggregate record (issue 13 B4, audit/log.py RefusalSampler).
    audit_refusals_per_source: int = Field(3, ge=0, le=1000)
    audit_refusal_window: float = Field(60.0, ge=1, le=3600)
    #: Sources (and kinds) tracked one by one per window; beyond, all go into one aggregate.
    audit_refusal_sources: int = Field(64, ge=1, le=100_000)
    #: Delete audit records older than this many days (anchored at a signed checkpoint, so
    #: ``corridor audit verify`` still proves the rest). Off by default: the trail is evidence
    #: (payment disputes, regulators' multi-year retention), so deleting it is the operator's call.
    audit_retention_days: float | None = Field(None, gt=0)
    #: Log level of ``corridor serve`` (``info`` logs one line per request, no secrets).
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Log lines as ``text`` or ``json`` (one object per line); unset: text in dev mode, else json.
    log_format: Literal["text", "json"] | None = None
    #: Port of the Prometheus metrics listener (plain HTTP: /metrics, /healthz, /readyz); unset: off.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    #: Address the metrics listener binds: loopback (plain HTTP; expose it to the scraper only).
    metrics_host: str = "127.0.0.1"
    #: Seconds /readyz waits for the database to answer before it says 503 (never longer).
    readiness_timeout: float = Field(2.0, gt=0, le=30)

    #: FAPI2 5.3.2.1-11: authorization codes live at most 60 s.
    code_lifetime: int = Field(60, ge=1, le=60)
    #: FAPI2 5.3.2.2-12: request_uri lifetime, below 600 s (Note 2: long enough for the user).
    par_lifetime: int = Field(90, ge=10, le=599)
    #: FAPI 2.0 Message Signing 5.3.1 (RFC 9101 10.5): every client pushes a signed request
    #: object; off, only the clients registered with ``require_signed_request_object`` must.
    require_signed_request_object: bool = False
    #: FAPI 2.0 Message Signing 5.4.1 ("require use of" JARM): every pushed request asks for a
    #: signed authorization response (``response_mode=jwt``); off, only the clients whose
    #: registered ``response_modes`` are all JARM modes must.
    require_signed_authorization_response: bool = False
    #: JARM 2.1: how long a signed authorization response is valid (its ``exp``); short, as the
    #: code inside lives ``code_lifetime`` anyway (issue 17: 10 minutes at most).
    jarm_lifetime: int = Field(60, ge=10, le=600)
    #: How long a user may take on the login and consent pages once /authorize was reached.
    interaction_lifetime: int = Field(600, ge=60, le=3600)
    #: Access-token lifetime. With local JWT validation at an RS it also bounds how long a
    #: revoked token may still be accepted, so it is short (FAPI2 6.1, RFC 9449 11.2).
    access_token_lifetime: int = Field(300, ge=30, le=3600)
    #: Grant (and refresh-token) lifetime.
    grant_lifetime: int = Field(30 * 86_400, ge=300)
    #: Browser login session lifetime.
    session_lifetime: int = Field(8 * 3600, ge=300)
    #: Sign-in throttling (issue 13 C1, server/signin.py): consecutive failed passwords an
    #: account may have before it waits ``sign_in_backoff`` seconds, doubling with each further
    #: failure up to ``sign_in_backoff_max`` (so about 100 guesses a day, NIST SP 800-63B
    #: 5.2.2, and a user locked out by someone else is back within 15 minutes).
    sign_in_account_failures: int = Field(5, ge=1, le=100)
    #: Failures one source address (an IPv6 /64) may have, over all accounts, before it waits
    #: the same way: higher, because many users may share an address behind NAT.
    sign_in_source_failures: int = Field(20, ge=1, le=10_000)
    sign_in_backoff: float = Field(30.0, ge=1, le=3600)
    sign_in_backoff_max: float = Field(900.0, ge=1, le=86_400)
    #: Wrong second-factor codes a user (over all sessions) may send before waiting the same way.
    second_factor_failures: int = Field(5, ge=1, le=100)
    #: Password checks (Argon2id, 64 MiB each) running at once in one process (issue 13 B3); an
    #: attempt beyond it is answered 503 with Retry-After at once, never queued, so sign-in
    #: forms cost at most this many x 64 MiB. 0 means the number of CPUs this process may use.
    password_hash_concurrency: int = Field(0, ge=0, le=256)
    #: FAPI2 5.3.2.1-13: accept iat/nbf up to this many seconds ahead (10..60).
    max_clock_skew: int = Field(10, ge=10, le=60)
    #: RFC 9449 11.1: how old a DPoP proof's iat may be.
    dpop_max_age: int = Field(60, ge=5, le=300)
    #: RFC 9449 8 / FAPI2 5.3.2.1-10: require server-issued DPoP nonces.
    dpop_nonce_required: bool = True
    #: Length of one DPoP nonce time step; a nonce is accepted for two steps.
    dpop_nonce_step: int = Field(60, ge=10, le=3600)
    #: Longest lifetime a client assertion may claim (bounds the jti replay cache).
    max_assertion_lifetime: int = Field(600, ge=30, le=3600)
    #: Audience of access tokens when the client names no ``resource`` (RFC 8707);
    #: empty means the issuer itself.
    default_resource: str = ""
    #: Scopes the server knows, with the words shown on the consent page.
    scopes: dict[str, str] = Field(
        default_factory=lambda: {
            "openid": "Confirm who you are (your user identifier)",
            "profile": "See your user name",
            "offline_access": "Keep access while you are away",
            "accounts": "Read your account list and balances",
            "payments": "Initiate payments from your accounts",
        }
    )
    #: RFC 9396 authorization_details types accepted at PAR, each validated against its JSON
    #: Schema and shown in words on the consent page (built in: policy/detail_types.py).
    authorization_details_types: list[str] = Field(
        default_factory=lambda: ["payment_initiation", "account_information", "agent_tool"]
    )
    #: More types: JSON files with ``type``, ``schema`` (JSON Schema 2020-12) and ``template``
    #: (Jinja2, sandboxed; autoescaped on the consent page, each value in its own ``<bdi>``,
    #: policy/details.py); name them in ``authorization_details_types`` too.
    authorization_details_type_files: list[str] = Field(default_factory=list)
    #: Signing algorithm for new server keys (FAPI2 5.4.1).
    signing_alg: str = "ES256"
    #: Named authentication levels, weakest first (design.md 5b).
    acr_levels: list[str] = Field(default_factory=lambda: ["password", "mfa", "passkey"])

    @field_validator("issuer")
    @classmethod
    def _issuer_is_https(cls, value: str) -> str:
        if not value:
            raise ValueError("the issuer is not set: give this server's public https URL (RFC 8414 2)")
        if not value.startswith("https://") or "?" in value or "#" in value:
            raise ValueError("the issuer must be an https URL without query or fragment (RFC 8414 2)")
        return value.rstrip("/")

    @field_validator("admin_users")
    @classmethod
    def _admin_names_enforced(cls, value: list[str]) -> list[str]:
        """issue 13 C6: compared with stored names, which are in RFC 8265 UsernameCaseMapped form."""
        try:
            return [enforce(name) for name in value]
        except UsernameError as exc:
            raise ValueError(f"admin_users: {exc}") from exc

    @property
    def acr(self) -> AcrLevels:
        """``acr_levels`` as the ordered value the checks compare with."""
        return AcrLevels(tuple(self.acr_levels))

    @field_validator("acr_levels")
    @classmethod
    def _known_levels(cls, value: list[str]) -> list[str]:
        """What a password, a TOTP code and a passkey give must be among the levels, in order."""
        built_in = [level for level in value if level in ("password", "mfa", "passkey")]
        if built_in != ["password", "mfa", "passkey"] or len(set(value)) != len(value):
            raise ValueError("acr_levels must list password, mfa and passkey in that order, once each")
        return value

    @field_validator("signing_alg")
    @classmethod
    def _fapi_alg(cls, value: str) -> str:
        if value not in ("PS256", "ES256", "EdDSA"):
            raise ValueError("signing_alg must be PS256, ES256 or EdDSA (FAPI2 5.4.1)")
        return value

    @model_validator(mode="after")
    def _derived_defaults(self) -> Settings:
        self._resolve_mode()
        if self.self_service_enrolment is None:
            self.self_service_enrolment = self.dev_mode
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'corridor.db').resolve()}"
        if not self.mtls_base_url:
            host = urlsplit(self.issuer).hostname or "localhost"
            self.mtls_base_url = f"https://{host}:{self.mtls_port}"
        self.mtls_base_url = self.mtls_base_url.rstrip("/")
        if self.admin_require_mfa is None:
            self.admin_require_mfa = not self.dev_mode
        return self

    #: Set on the subclass ``load`` builds for a configuration file (then dev mode is never implied).
    _config_file: ClassVar[Path | None] = None
    _mode_reason: str = PrivateAttr("")

    def _resolve_mode(self) -> None:
        """issue 18: dev mode only when asked, or for a loopback issuer without a config file."""
        if self.dev_mode is not None:
            self._mode_reason = f"dev_mode = {'true' if self.dev_mode else 'false'}"
        elif not is_loopback_url(self.issuer):
            self.dev_mode, self._mode_reason = False, f"issuer {self.issuer} is not a loopback URL"
        elif self._config_file is not None:
            self.dev_mode = False
            self._mode_reason = f"a config file is given: {self._config_file}"
        else:
            self.dev_mode = True
            self._mode_reason = f"issuer {self.issuer} is a loopback URL and no config file is given"

    @property
    def mode_reason(self) -> str:
        """Why dev or production mode (the banner of ``corridor serve``)."""
        return self._mode_reason

    @property
    def proxy_mode(self) -> bool:
        """Behind a TLS-terminating proxy on this host (issue 3, deploy/nginx): ``trusted_proxies``
        set and both listeners on loopback, so only that host reaches them. Then the local CA may
        serve the proxy hop in production mode (its certificate names only localhost)."""
        return bool(self.trusted_proxies) and all(
            is_loopback_host(host) for host in (self.host, self.mtls_host)
        )

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Defaults < TOML file < environment < explicit overrides (CLI flags)."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        if config_file is None:
            return cls(**clean)
        toml_file = config_file

        class _FromFile(cls):  # type: ignore[valid-type,misc]
            _config_file = toml_file

            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

        from_file = _FromFile(**clean)
        settings = Settings(**from_file.model_dump())
        settings._mode_reason = from_file.mode_reason
        return settings


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (brackets allowed)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names a loopback host (issue 18: dev mode, HSTS preload)."""
    return is_loopback_host(urlsplit(url).hostname or "")


def open_store(settings: Settings) -> Store:
    """The store these settings name, with their pool size (migrations are the caller's)."""
    from corridor.store.sql import Store

    return Store(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
