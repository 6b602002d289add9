"""
Notifications: events of the registry's activity delivered to endpoints, in distribution's
event format, through per-endpoint durable queues and sink plugins.

The pipeline of one endpoint (L{registryd.notifications.endpoints}): ignore rules →
durable queue (L{registryd.notifications.queue}) → deliverer → retrying sink with a
breaker (L{registryd.notifications.retry}) → the endpoint's sink, a plugin
(L{registryd.notifications.interfaces.INotificationSinkFactory}); the built-in one is the
HTTP webhook (L{registryd.notifications.webhook}).

This package module stays light: plugin files import L{SinkPlugin} from it.
"""

from __future__ import annotations

import importlib
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from registryd.notifications.interfaces import INotificationSink, INotificationSinkFactory


@implementer(IPlugin, INotificationSinkFactory)
class SinkPlugin:
    """
    A sink factory that imports its sink module only when a sink is made, so scanning
    plugins stays cheap. The module provides C{createSink(reactor, endpointConfig)}.
    """

    def __init__(self, name: str, module: str, description: str = "") -> None:
        self.name = name
        self.module = module
        self.description = description

    def create(self, reactor: Any, endpointConfig: Any) -> INotificationSink:
        """Import the sink module and let it build a sink for the endpoint."""
        return importlib.import_module(self.module).createSink(reactor, endpointConfig)

    def __repr__(self) -> str:
        return f"<SinkPlugin {self.name!r} from {self.module}>"


__all__ = ["INotificationSink", "INotificationSinkFactory", "SinkPlugin"]
