"""The access controller the C{auth} section asks for, built at start-up."""

from __future__ import annotations

import importlib
from typing import Any

from registryd.auth.interfaces import IAccessController
from registryd.config.auth import AuthConfig
from registryd.config.errors import ConfigError

# method -> the module whose controllerFromConfig(config, reactor) builds it.
MODULES = {
    "htpasswd": "registryd.auth.htpasswd",
    "token": "registryd.auth.token",
    "silly": "registryd.auth.silly",
}


def accessControllerFor(config: AuthConfig, reactor: Any) -> IAccessController | None:
    """
    The configured controller, or None for an open registry.

    @raise registryd.config.errors.ConfigError: naming the key at fault (an unreadable
        rules file, a bad certificate bundle...).
    """
    method = config.method
    if method is None:
        return None
    try:
        module = importlib.import_module(MODULES[method])
    except ModuleNotFoundError as e:
        if e.name != MODULES[method]:
            raise
        raise ConfigError(f"auth.{method} is not supported yet by registryd", ["auth", method]) from None
    return module.controllerFromConfig(getattr(config, method), reactor)
