"""
The built-in notification sink, as a plugin: nothing but its name here, so scanning for
plugins stays cheap; the webhook module (treq) is imported when a sink is made.
"""

from registryd.notifications import SinkPlugin

http = SinkPlugin(
    "http", "registryd.notifications.webhook", "POSTs each batch of events to the endpoint's URL (a webhook)"
)
