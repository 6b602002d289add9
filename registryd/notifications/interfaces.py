"""
The notification sink seam: what delivers a batch of events somewhere, and the plugins
that make sinks.

Events are plain dicts in distribution's event format (C{id}, C{timestamp}, C{action},
C{target}, C{request}, C{actor}, C{source}); a batch is the events of one API request,
delivered together (one HTTP request per batch, as distribution does).
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface


class NotificationError(Exception):
    """Base of the errors of the notification pipeline."""


class DeliveryFailed(NotificationError):
    """
    A sink could not deliver a batch (the receiver refused it, or could not be reached).

    @ivar sink: a description of the sink (e.g. C{httpSink{https://hooks.example/}}).
    @ivar reason: what went wrong, in words.
    """

    def __init__(self, sink: str, reason: str) -> None:
        self.sink = sink
        self.reason = reason
        super().__init__(sink, reason)

    def __str__(self) -> str:
        return f"{self.sink}: {self.reason}"


class SinkClosed(NotificationError):
    """The sink was closed: it takes no more writes."""


class QueueUnavailable(NotificationError):
    """The durable queue cannot be opened (unwritable path, or held by another process)."""


class INotificationSink(Interface):
    """Something that delivers batches of events: a webhook, a message bus, a file."""

    def write(events):  # type: ignore[no-untyped-def]
        """
        Deliver one batch (a list of event dicts), all or nothing.

        @return: a Deferred firing (with anything) once the batch was accepted, or failing
            (typically with L{DeliveryFailed}) when it was not delivered. Cancelling it
            abandons the attempt. A sink is written to by one caller at a time.
        """

    def close():  # type: ignore[no-untyped-def]
        """
        Stop: abandon any write in flight and release connections.

        @return: a Deferred firing once closed; later writes fail with L{SinkClosed}.
        """


class INotificationSinkFactory(IPlugin):
    """A sink plugin: found with C{twisted.plugin.getPlugins}, chosen by C{type} in an endpoint."""

    name = Attribute("the name C{notifications.endpoints[].type} uses, unique among sink plugins")

    def create(reactor, endpointConfig):  # type: ignore[no-untyped-def]
        """
        Make the sink of one endpoint.

        @param endpointConfig: a L{registryd.config.notifications.EndpointConfig}; a plugin
            reads its own settings from C{endpointConfig.parameters}.
        @return: an L{INotificationSink}.
        @raise registryd.config.errors.ConfigError: a setting is wrong, naming its key path
            (C{endpointConfig.keyPath} + C{('parameters', key)}).
        """
