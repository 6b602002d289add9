"""The in-memory driver runs the shared driver suite, and takes no parameters."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from registryd.config.errors import ConfigError
from registryd.storage.inmemory import InMemoryDriver, createDriver
from registryd.testing.driversuite import StorageDriverTestsMixin


class InMemoryDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared suite against L{InMemoryDriver}."""

    def makeDriver(self) -> InMemoryDriver:
        return InMemoryDriver()


class InMemoryParameterTests(TestCase):
    """createDriver accepts an empty or absent section and nothing else."""

    def test_noParameters(self) -> None:
        self.assertIsInstance(createDriver(None, None), InMemoryDriver)
        self.assertIsInstance(createDriver(None, {}), InMemoryDriver)

    def test_unknownParameter(self) -> None:
        e = self.assertRaises(ConfigError, createDriver, None, {"rootdirectory": "/x"})
        self.assertEqual(e.keyPath, ("storage", "inmemory", "rootdirectory"))

    def test_notAMapping(self) -> None:
        e = self.assertRaises(ConfigError, createDriver, None, ["x"])
        self.assertEqual(e.keyPath, ("storage", "inmemory"))

    def test_driversAreSeparate(self) -> None:
        first, second = createDriver(None, {}), createDriver(None, {})
        first.putContent("/only/here", b"x")
        self.failureResultOf(second.getContent("/only/here"))
