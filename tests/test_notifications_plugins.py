"""Sinks are plugins: the built-in http sink, found lazily; a third party's own sink, installed and used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from registryd.notifications import SinkPlugin
from registryd.notifications.endpoints import sinkFactories
from registryd.notifications.interfaces import INotificationSinkFactory
from tests.plugins import thirdpartysink
from tests.plugins.thirdparty import REPOSITORY_ROOT, childEnvironment


class BuiltInTests(TestCase):
    def test_http_sink_is_installed(self) -> None:
        factories = sinkFactories()
        self.assertIsInstance(factories["http"], SinkPlugin)
        self.assertEqual(factories["http"].module, "registryd.notifications.webhook")
        verifyObject(INotificationSinkFactory, factories["http"])

    def test_plugin_file_is_import_light(self) -> None:
        """Scanning plugins must not import the webhook (treq): a child imports the plugin file alone."""
        code = textwrap.dedent(
            """
            import sys
            import twisted.plugins.registryd_sinks
            print(",".join(sorted(m for m in sys.modules if m.startswith(("treq", "registryd")))))
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=REPOSITORY_ROOT,
            env=childEnvironment(REPOSITORY_ROOT),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        loaded = result.stdout.strip().split(",")
        self.assertIn("registryd.notifications", loaded)
        self.assertNotIn("registryd.notifications.webhook", loaded)
        self.assertFalse([m for m in loaded if m.startswith("treq")], loaded)

    def test_not_installed_not_found(self) -> None:
        self.assertNotIn(thirdpartysink.SINK_NAME, sinkFactories())


class ThirdPartySinkTests(TestCase):
    """A sink shipped as its own distribution is discovered and used by an endpoint with its type."""

    def setUp(self) -> None:
        self.work = os.path.abspath(self.mktemp())
        self.site = thirdpartysink.installThirdPartySink(self.work)

    def runChild(self, code: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=childEnvironment(self.site),
            capture_output=True,
            text=True,
            cwd=self.work,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result.stdout

    def test_discovered_and_used_by_an_endpoint(self) -> None:
        output = os.path.join(self.work, "events.jsonl")
        queue = os.path.join(self.work, "queue.sqlite")
        report = self.runChild(
            f"""
            import json
            from twisted.internet import reactor
            from registryd.config.notifications import parseNotifications
            from registryd.notifications.endpoints import notificationServiceFor, sinkFactories

            config = parseNotifications({{
                "queue": {{"path": {queue!r}}},
                "endpoints": [{{"name": "log", "type": "{thirdpartysink.SINK_NAME}",
                                "parameters": {{"path": {output!r}}}, "ignore": {{"actions": ["pull"]}}}}],
            }})
            service = notificationServiceFor(config, reactor)
            service.startService()
            service.broadcast([{{"id": "1", "action": "push"}}, {{"id": "2", "action": "pull"}}])
            service.broadcast([{{"id": "3", "action": "delete"}}])
            figures = service.figures()
            service.stopService()
            print(json.dumps({{"names": sorted(sinkFactories()), "figures": figures}}))
            """
        )
        result = json.loads(report)
        self.assertEqual(result["names"], ["http", thirdpartysink.SINK_NAME])
        self.assertEqual(result["figures"]["log"], {"pending": 0, "delivered": 2, "failed": 0, "dropped": 0})
        with open(output) as f:
            batches = [json.loads(line) for line in f]
        self.assertEqual(batches, [[{"id": "1", "action": "push"}], [{"id": "3", "action": "delete"}]])

    def test_third_party_checks_its_parameters(self) -> None:
        output = self.runChild(
            f"""
            from twisted.internet import reactor
            from registryd.config.errors import ConfigError
            from registryd.config.notifications import parseNotifications
            from registryd.notifications.endpoints import notificationServiceFor

            config = parseNotifications({{"endpoints": [{{"name": "log", "type": "{thirdpartysink.SINK_NAME}",
                                                         "parameters": {{"colour": "blue"}}}}]}})
            try:
                notificationServiceFor(config, reactor)
            except ConfigError as e:
                print(e)
            """
        )
        self.assertEqual(output.strip(), "notifications.endpoints.0.parameters.path: required: a file path")
