"""
Finding plugins by name: storage drivers now, notification sinks and others later.

Plugins are found with Twisted's plugin system (modules in any ``twisted/plugins/``
directory on ``sys.path``), so a third party ships a driver as its own distribution with
its own ``twisted/plugins/<name>.py``; nothing here needs to know about it.

This module is imported by plugin files, so it must stay light: no driver code, no
reactor.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

from twisted.logger import Logger
from twisted.plugin import IPlugin, getCache
from zope.interface import implementer
from zope.interface.interface import InterfaceClass

from registryd.config.errors import ConfigError
from registryd.storage.interfaces import IStorageDriver, IStorageDriverFactory

log = Logger()


class DuplicatePlugin(ConfigError):
    """Two installed plugins of one kind claim the same name; the registry cannot choose."""


def pluginsByName(
    interface: InterfaceClass, kind: str, package: types.ModuleType | None = None
) -> dict[str, Any]:
    """
    Map each installed plugin providing interface to its C{name} attribute.

    @param kind: what the plugins are, for messages ("storage driver").
    @param package: the plugin package to search; C{twisted.plugins} by default.
    @raise DuplicatePlugin: naming both modules when two plugins share a name.
    """
    if package is None:
        import twisted.plugins as package
    found: dict[str, tuple[Any, str]] = {}
    for moduleName, dropin in sorted(getCache(package).items()):
        for cached in dropin.plugins:
            origin = f"{package.__name__}.{moduleName}.{cached.name}"
            try:
                plugin = interface(cached, None)
            except Exception:
                # A broken third-party plugin must not stop the others from loading.
                log.failure("cannot load {kind} plugin {origin}", kind=kind, origin=origin)
                continue
            if plugin is None:
                continue
            name = getattr(plugin, "name", None)
            if not isinstance(name, str) or not name:
                log.error("{kind} plugin {origin} has no name; ignored", kind=kind, origin=origin)
                continue
            if name in found:
                raise DuplicatePlugin(
                    f"two {kind} plugins are named {name!r}: {found[name][1]} and {origin}",
                    (),
                )
            found[name] = (plugin, origin)
    return {name: plugin for name, (plugin, _) in found.items()}


def findPlugin(
    interface: InterfaceClass,
    kind: str,
    name: str,
    keyPath: tuple[str, ...],
    package: types.ModuleType | None = None,
) -> Any:
    """
    The installed plugin providing interface named name.

    @raise ConfigError: at keyPath, listing the installed names, when there is none.
    """
    plugins = pluginsByName(interface, kind, package)
    try:
        return plugins[name]
    except KeyError:
        installed = ", ".join(sorted(plugins)) or "none"
        raise ConfigError(f"unknown {kind} {name!r}; installed: {installed}", keyPath) from None


def storageDriverFactories(package: types.ModuleType | None = None) -> dict[str, IStorageDriverFactory]:
    """Every installed storage driver factory, by driver name."""
    return pluginsByName(IStorageDriverFactory, "storage driver", package)


def createStorageDriver(
    reactor: Any, name: str, parameters: dict | None, package: types.ModuleType | None = None
) -> IStorageDriver:
    """
    Build the storage driver configured as C{storage.<name>} with its parameters.

    @raise ConfigError: the driver is not installed (the message lists those that are),
        or a parameter is wrong (naming it).
    """
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ConfigError("driver parameters must be a mapping", ("storage", name))
    factory = findPlugin(IStorageDriverFactory, "storage driver", name, ("storage", name), package)
    driver = factory.create(reactor, dict(parameters))
    if not IStorageDriver.providedBy(driver):
        raise ConfigError(f"plugin did not make an IStorageDriver but {driver!r}", ("storage", name))
    return driver


@implementer(IPlugin, IStorageDriverFactory)
class StorageDriverPlugin:
    """
    A storage driver factory that imports its driver module only when a driver is made,
    so that scanning plugins stays cheap. The module provides
    C{createDriver(reactor, parameters) -> IStorageDriver}.
    """

    def __init__(self, name: str, module: str, description: str = "") -> None:
        self.name = name
        self.module = module
        self.description = description

    def create(self, reactor: Any, parameters: dict) -> IStorageDriver:
        """Import the driver module and let it build a driver from its parameters."""
        return importlib.import_module(self.module).createDriver(reactor, parameters)

    def __repr__(self) -> str:
        return f"<StorageDriverPlugin {self.name!r} from {self.module}>"
