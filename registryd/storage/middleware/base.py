"""
The shape every storage middleware shares: a driver that passes each operation to the
driver it wraps and changes only what it is for (distribution's StorageDriver middleware).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from registryd.storage.interfaces import IStorageDriver


@implementer(IStorageDriver)
class DriverMiddleware:
    """
    L{IStorageDriver} by delegation to C{driver}; subclasses override L{redirectURL}.

    @ivar driver: the wrapped driver.
    """

    def __init__(self, driver: IStorageDriver) -> None:
        self.driver = driver
        self.name = driver.name

    def __getattr__(self, name: str) -> Any:
        # Every other operation, and what a driver offers beyond the interface (stop(), close()).
        if name == "driver":
            raise AttributeError(name)
        return getattr(self.driver, name)

    def redirectURL(self, method: str, path: str) -> Deferred:
        """@return: Deferred firing with where a client fetches C{path}'s content, or None."""
        raise NotImplementedError


__all__ = ["DriverMiddleware"]
