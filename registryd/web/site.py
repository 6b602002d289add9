"""The twisted.web Site the registry listens with: request-wide concerns live here."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Site

from registryd.web.request import RegistryRequest


class RegistrySite(Site):
    """A Site whose requests stream their bodies (see L{RegistryRequest})."""

    requestFactory = RegistryRequest
    displayTracebacks = False

    def __init__(self, resource: IResource, *args: Any, **kwargs: Any) -> None:
        super().__init__(resource, *args, **kwargs)
