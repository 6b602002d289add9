"""The twistd command line of registryd: C{twistd -n registryd --config PATH}."""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from twisted.application.service import IService
from twisted.python import usage

from registryd.config import ConfigError, Configuration, load
from registryd.config.log import makeObserver


class ConfigRefused(SystemExit):
    """A configuration registryd cannot run with: twistd exits printing this one line."""

    def __str__(self) -> str:
        return str(self.code)


class Options(usage.Options):
    """registryd's twistd options; the configuration is loaded and checked while parsing them."""

    synopsis = "[-c PATH]"
    longdesc = (
        "Run a container image registry (Docker Registry HTTP API v2 / OCI Distribution). "
        "The configuration uses distribution's config.yml keys; REGISTRY_* environment variables "
        "override them. Without --config it serves :5000 with filesystem storage."
    )
    optParameters = [
        ["config", "c", None, "Path to the YAML configuration file (distribution's config.yml format)."],
    ]

    configuration: Configuration | None = None

    def postOptions(self) -> None:
        """Load and validate the configuration now, so a bad one stops start-up with one line."""
        try:
            self.configuration = load(self["config"], os.environ)
            _checkDriverInstalled(self.configuration.storage.driver)
        except ConfigError as e:
            # Not a usage error: twistd would print its whole usage text above the one line.
            raise ConfigRefused(f"registryd: {e}") from None
        parent = getattr(self, "parent", None)
        if parent is not None and not parent.get("logger") and not parent.get("syslog"):
            # twistd imports --logger by name, so name a function here and leave it what it
            # needs; an explicit --logger or --syslog wins over the config's log section.
            global _logging
            _logging = (self.configuration.log, parent)
            parent["logger"] = f"{__name__}.configuredLogObserver"


_logging: tuple[Any, Any] | None = None


def configuredLogObserver() -> Any:
    """twistd's log observer from the config's log section, writing where twistd would have."""
    if _logging is None:
        raise RuntimeError("registryd's twistd options were not parsed")
    logConfig, parent = _logging
    return makeObserver(logConfig, _twistdLogFile(parent))


def _checkDriverInstalled(name: str) -> None:
    """Refuse a storage driver no installed plugin provides, listing those that are (one line)."""
    from registryd.plugins import findPlugin
    from registryd.storage.interfaces import IStorageDriverFactory

    findPlugin(IStorageDriverFactory, "storage driver", name, ("storage", name))


def _twistdLogFile(parent: Any) -> IO[str]:
    """The file twistd itself would log to: stdout in the foreground or with --logfile -, else the file."""
    name = parent.get("logfile") or ""
    if name == "-" or (parent.get("nodaemon") and not name):
        return sys.stdout
    from twisted.python.logfile import LogFile

    return LogFile.fromFullPath(name or "twistd.log")  # type: ignore[return-value]


def makeService(options: Options) -> IService:
    """Build the registry service from the parsed options (see L{registryd.service.makeService})."""
    from registryd import memory
    from registryd.service import makeService as build

    memory.keepFreedMemory()
    configuration = options.configuration
    if configuration is None:
        configuration = load(options["config"], os.environ)
    try:
        return build(configuration)
    except ConfigError as e:
        # An unknown driver or a bad driver parameter: one line, not a traceback.
        raise ConfigRefused(f"registryd: {e}") from None
