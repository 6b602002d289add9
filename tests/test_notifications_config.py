"""The notifications section: distribution's endpoint keys, ours, defaults, and refusals naming the key."""

from __future__ import annotations

import yaml
from twisted.trial.unittest import TestCase

from registryd.config import ConfigError, parseDocument
from registryd.config.notifications import (
    DEFAULT_MAX_PENDING,
    EVENTS_V1,
    EVENTS_V2,
    EndpointConfig,
    NotificationsConfig,
    QueueConfig,
    parseNotifications,
)

FULL = """
events:
  includereferences: true
queue:
  path: /var/spool/registryd/queue.sqlite
endpoints:
  - name: alistener
    disabled: false
    url: https://my.listener.com/event
    headers:
      Authorization: [Bearer abc]
      X-Several: [one, two]
    timeout: 500ms
    threshold: 5
    backoff: 2s
    ignoredmediatypes:
      - application/octet-stream
    ignore:
      mediatypes: [application/vnd.oci.image.layer.v1.tar]
      actions: [pull]
    secret: shared
    mediatype: application/vnd.docker.distribution.events.v1+json
    maxpending: 50
  - name: bus
    type: kafka
    parameters: {topic: registry}
"""


class ParseTests(TestCase):
    def parse(self, text: str) -> NotificationsConfig:
        return parseNotifications(yaml.safe_load(text))

    def refused(self, text: str, keyPath: tuple[str, ...]) -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            self.parse(text)
        self.assertEqual(caught.exception.keyPath, keyPath, str(caught.exception))
        return caught.exception

    def test_every_key(self) -> None:
        config = self.parse(FULL)
        self.assertTrue(config.includeReferences)
        self.assertEqual(config.queue, QueueConfig("/var/spool/registryd/queue.sqlite"))
        listener, bus = config.endpoints
        self.assertEqual(
            listener,
            EndpointConfig(
                name="alistener",
                url="https://my.listener.com/event",
                headers={"Authorization": ["Bearer abc"], "X-Several": ["one", "two"]},
                timeout=0.5,
                threshold=5,
                backoff=2.0,
                ignoredMediaTypes=("application/octet-stream",),
                ignoreMediaTypes=("application/vnd.oci.image.layer.v1.tar",),
                ignoreActions=("pull",),
                secret="shared",
                mediaType=EVENTS_V1,
                maxPending=50,
                index=0,
            ),
        )
        self.assertEqual(
            (bus.sink, bus.parameters, bus.url, bus.index), ("kafka", {"topic": "registry"}, "", 1)
        )
        self.assertEqual(bus.keyPath, ("notifications", "endpoints", "1"))

    def test_defaults(self) -> None:
        self.assertEqual(parseNotifications(None), NotificationsConfig())
        (endpoint,) = self.parse("endpoints: [{name: a, url: 'http://127.0.0.1:9/'}]").endpoints
        self.assertEqual(
            (endpoint.timeout, endpoint.threshold, endpoint.backoff, endpoint.sink, endpoint.mediaType),
            (1.0, 10, 1.0, "http", EVENTS_V2),
        )
        self.assertEqual(
            (endpoint.maxPending, endpoint.secret, endpoint.disabled), (DEFAULT_MAX_PENDING, None, False)
        )

    def test_section_accepted_by_the_whole_configuration(self) -> None:
        document = {"version": "0.1", "storage": "inmemory", "notifications": yaml.safe_load(FULL)}
        config = parseDocument(document)
        self.assertEqual([e.name for e in config.notifications.endpoints], ["alistener", "bus"])

    def test_refusals_name_the_key(self) -> None:
        for text, keyPath in [
            ("colour: blue", ("notifications", "colour")),
            ("events: {includerefs: true}", ("notifications", "events", "includerefs")),
            ("queue: {path: ''}", ("notifications", "queue", "path")),
            ("queue: {size: 3}", ("notifications", "queue", "size")),
            ("endpoints: {name: a}", ("notifications", "endpoints")),
            ("endpoints: [a]", ("notifications", "endpoints", "0")),
            ("endpoints: [{url: 'http://x/'}]", ("notifications", "endpoints", "0", "name")),
            ("endpoints: [{name: a}]", ("notifications", "endpoints", "0", "url")),
            ("endpoints: [{name: a, url: 'ftp://x/'}]", ("notifications", "endpoints", "0", "url")),
            (
                "endpoints: [{name: a, url: 'http://x/', colour: 1}]",
                ("notifications", "endpoints", "0", "colour"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', timeout: soon}]",
                ("notifications", "endpoints", "0", "timeout"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', timeout: 0s}]",
                ("notifications", "endpoints", "0", "timeout"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', threshold: -1}]",
                ("notifications", "endpoints", "0", "threshold"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', backoff: x}]",
                ("notifications", "endpoints", "0", "backoff"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', maxpending: 0}]",
                ("notifications", "endpoints", "0", "maxpending"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', secret: ''}]",
                ("notifications", "endpoints", "0", "secret"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', mediatype: text/json}]",
                ("notifications", "endpoints", "0", "mediatype"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', headers: {X: {a: b}}}]",
                ("notifications", "endpoints", "0", "headers", "X"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', ignore: {tags: [x]}}]",
                ("notifications", "endpoints", "0", "ignore", "tags"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', ignore: {actions: pull}}]",
                ("notifications", "endpoints", "0", "ignore", "actions"),
            ),
            (
                "endpoints: [{name: a, url: 'http://x/', ignoredmediatypes: [1]}]",
                ("notifications", "endpoints", "0", "ignoredmediatypes"),
            ),
            ("endpoints: [{name: a, type: ''}]", ("notifications", "endpoints", "0", "type")),
            (
                "endpoints: [{name: a, type: bus, parameters: [1]}]",
                ("notifications", "endpoints", "0", "parameters"),
            ),
        ]:
            self.refused(text, keyPath)

    def test_endpoint_names_are_unique(self) -> None:
        error = self.refused(
            "endpoints: [{name: a, url: 'http://x/'}, {name: a, url: 'http://y/'}]",
            ("notifications", "endpoints", "1", "name"),
        )
        self.assertIn("entry 0", str(error))
