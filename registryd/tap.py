"""The twistd command line of registryd: C{twistd -n registryd --config PATH}."""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from twisted.application.service import IService
from twisted.python import usage

from registryd.config import ConfigError, Configuration, load
from registryd.config.log import makeObserver


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
            raise usage.UsageError(str(e)) from None
        parent = getattr(self, "parent", None)
        if parent is not None and self._ownLogging(parent):
            parent["logger"] = self._logObserverFactory(parent)

    @staticmethod
    def _ownLogging(parent: Any) -> bool:
        # An explicit --logger or --syslog wins over the config's log section.
        return not parent.get("logger") and not parent.get("syslog")

    def _logObserverFactory(self, parent: Any) -> Any:
        """Make twistd log through the config's log section, to where twistd would have logged."""
        assert self.configuration is not None
        logConfig = self.configuration.log

        def factory() -> Any:
            return makeObserver(logConfig, _twistdLogFile(parent))

        return factory


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
    from registryd.service import makeService as build

    configuration = options.configuration
    if configuration is None:
        configuration = load(options["config"], os.environ)
    try:
        return build(configuration)
    except ConfigError as e:
        # An unknown driver or a bad driver parameter: one line, not a traceback.
        raise SystemExit(f"registryd: {e}") from None
