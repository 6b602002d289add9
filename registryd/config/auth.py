"""
The C{auth} section: which access controller guards the API, with distribution's keys.

Exactly one of C{htpasswd}, C{token} or C{silly} may be set, as in distribution.
C{htpasswd.access} is ours: an access-rules file giving users and groups rights per
repository (see L{registryd.auth.rules}).
"""

from __future__ import annotations

from dataclasses import dataclass

from registryd.config import parsers
from registryd.config.errors import ConfigError

KEY = ["auth"]


@dataclass(frozen=True)
class HtpasswdConfig:
    """C{auth.htpasswd}: basic auth against an htpasswd file of bcrypt entries."""

    realm: str
    path: str
    access: str | None = None


@dataclass(frozen=True)
class TokenConfig:
    """C{auth.token}: bearer tokens (JWTs) issued by a token server the registry trusts."""

    realm: str
    service: str
    issuer: str
    rootCertBundle: str | None = None
    jwks: str | None = None
    signingAlgorithms: tuple[str, ...] = ()
    autoRedirect: bool = False
    autoRedirectPath: str = "/auth/token"


@dataclass(frozen=True)
class SillyConfig:
    """C{auth.silly}: distribution's development scheme (any Authorization header passes)."""

    realm: str
    service: str


@dataclass(frozen=True)
class AuthConfig:
    """The one access controller configured (all None: an open registry)."""

    htpasswd: HtpasswdConfig | None = None
    token: TokenConfig | None = None
    silly: SillyConfig | None = None

    @property
    def method(self) -> str | None:
        """The configured method's name, or None."""
        for name in ("htpasswd", "token", "silly"):
            if getattr(self, name) is not None:
                return name
        return None


def _required(values: dict, key: str, keyPath: list[str]) -> str:
    if values.get(key) in (None, ""):
        raise ConfigError("required", [*keyPath, key])
    return parsers.string(values[key], [*keyPath, key])


def _htpasswd(section: object) -> HtpasswdConfig:
    keyPath = [*KEY, "htpasswd"]
    values = parsers.mapping(section, keyPath)
    parsers.onlyKeys(values, ("realm", "path", "access"), keyPath)
    return HtpasswdConfig(
        realm=_required(values, "realm", keyPath),
        path=_required(values, "path", keyPath),
        access=parsers.optional(values, "access", parsers.string, None, keyPath),
    )


def _stringList(value: object, keyPath: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"expected a list of strings, got {parsers.typeName(value)}", keyPath)
    return tuple(parsers.string(item, keyPath) for item in value)


def _token(section: object) -> TokenConfig:
    keyPath = [*KEY, "token"]
    values = parsers.mapping(section, keyPath)
    parsers.onlyKeys(
        values,
        (
            "realm",
            "service",
            "issuer",
            "rootcertbundle",
            "jwks",
            "signingalgorithms",
            "autoredirect",
            "autoredirectpath",
        ),
        keyPath,
    )
    rootCertBundle = parsers.optional(values, "rootcertbundle", parsers.string, None, keyPath)
    jwks = parsers.optional(values, "jwks", parsers.string, None, keyPath)
    if not rootCertBundle and not jwks:
        raise ConfigError(
            "set rootcertbundle or jwks: the keys that sign tokens", [*keyPath, "rootcertbundle"]
        )
    return TokenConfig(
        realm=_required(values, "realm", keyPath),
        service=_required(values, "service", keyPath),
        issuer=_required(values, "issuer", keyPath),
        rootCertBundle=rootCertBundle or None,
        jwks=jwks or None,
        signingAlgorithms=parsers.optional(values, "signingalgorithms", _stringList, (), keyPath),
        autoRedirect=parsers.optional(values, "autoredirect", parsers.boolean, False, keyPath),
        autoRedirectPath=parsers.optional(values, "autoredirectpath", parsers.string, "/auth/token", keyPath),
    )


def _silly(section: object) -> SillyConfig:
    keyPath = [*KEY, "silly"]
    values = parsers.mapping(section, keyPath)
    parsers.onlyKeys(values, ("realm", "service"), keyPath)
    return SillyConfig(
        realm=_required(values, "realm", keyPath), service=_required(values, "service", keyPath)
    )


_METHODS = {"htpasswd": _htpasswd, "token": _token, "silly": _silly}


def parseAuth(section: object) -> AuthConfig:
    """Read the auth section: at most one method, each with its own keys."""
    values = parsers.mapping(section, KEY)
    parsers.onlyKeys(values, _METHODS, KEY)
    chosen = [name for name, value in values.items() if value is not None]
    if len(chosen) > 1:
        raise ConfigError(f"only one auth method may be set, found {', '.join(chosen)}", KEY)
    if not chosen:
        return AuthConfig()
    name = chosen[0]
    return AuthConfig(**{name: _METHODS[name](values[name])})
