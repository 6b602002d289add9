"""Tests for registryd.metrics and the instrumented storage driver: what is counted, with which labels."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from registryd import metrics
from registryd.storage.filesystem import FilesystemDriver
from registryd.storage.inmemory import InMemoryDriver
from registryd.storage.instrumented import InstrumentedDriver
from registryd.storage.interfaces import IStorageDriver, PathNotFound
from registryd.testing.driversuite import StorageDriverTestsMixin


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of the default registry (0 when it has none yet)."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


class InstrumentedInMemoryDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared driver suite passes through the wrapper (in-memory driver beneath)."""

    def makeDriver(self) -> IStorageDriver:
        return InstrumentedDriver(InMemoryDriver())


class InstrumentedFilesystemDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared driver suite passes through the wrapper (filesystem driver beneath)."""

    def makeDriver(self) -> IStorageDriver:
        driver = FilesystemDriver(self.mktemp())
        self.addCleanup(driver.stop)
        return InstrumentedDriver(driver)


class InstrumentedDriverMetricsTests(TestCase):
    """Each operation is timed by driver and operation; failures are counted by error."""

    def setUp(self) -> None:
        self.ticks = iter(range(0, 1000, 2))
        self.driver = InstrumentedDriver(InMemoryDriver(), clock=lambda: float(next(self.ticks)))

    def test_operations_are_timed_by_driver_and_operation(self) -> None:
        count = sample(
            "registryd_storage_operation_duration_seconds_count", driver="inmemory", operation="putContent"
        )
        total = sample(
            "registryd_storage_operation_duration_seconds_sum", driver="inmemory", operation="putContent"
        )
        self.successResultOf(self.driver.putContent("/a/b", b"x"))
        self.assertEqual(
            sample(
                "registryd_storage_operation_duration_seconds_count",
                driver="inmemory",
                operation="putContent",
            ),
            count + 1,
        )
        # The clock ticks 2 between the call and the Deferred firing.
        self.assertEqual(
            sample(
                "registryd_storage_operation_duration_seconds_sum", driver="inmemory", operation="putContent"
            ),
            total + 2,
        )
        self.assertEqual(self.successResultOf(self.driver.getContent("/a/b")), b"x")

    def test_failures_are_counted_by_error(self) -> None:
        labels = {"driver": "inmemory", "operation": "getContent", "error": "PathNotFound"}
        before = sample("registryd_storage_errors_total", **labels)
        self.failureResultOf(self.driver.getContent("/missing"), PathNotFound)
        self.assertEqual(sample("registryd_storage_errors_total", **labels), before + 1)

    def test_unexpected_errors_have_one_label(self) -> None:
        class Broken(InMemoryDriver):
            def stat(self, path: str) -> Deferred:
                raise ZeroDivisionError()

        driver = InstrumentedDriver(Broken())
        labels = {"driver": "inmemory", "operation": "stat", "error": "unexpected"}
        before = sample("registryd_storage_errors_total", **labels)
        self.failureResultOf(driver.stat("/"), ZeroDivisionError)
        self.assertEqual(sample("registryd_storage_errors_total", **labels), before + 1)

    def test_other_attributes_pass_through(self) -> None:
        inner: Any = InMemoryDriver()
        inner.special = "yes"
        self.assertEqual(InstrumentedDriver(inner).special, "yes")
        self.assertEqual(InstrumentedDriver(inner).name, "inmemory")


class CollectorTests(TestCase):
    """Notification and health figures are read at scrape time from the services that run."""

    def test_notification_figures_while_the_source_runs(self) -> None:
        figures = {"hook": {"pending": 3, "delivered": 10, "failed": 2, "dropped": 1}}
        source = metrics.FiguresSource(metrics.NOTIFICATIONS, lambda: figures)
        source.startService()
        try:
            self.assertEqual(sample("registryd_notification_events_pending", endpoint="hook"), 3)
            self.assertEqual(sample("registryd_notification_events_delivered_total", endpoint="hook"), 10)
            self.assertEqual(sample("registryd_notification_events_failed_total", endpoint="hook"), 2)
            self.assertEqual(sample("registryd_notification_events_dropped_total", endpoint="hook"), 1)
            figures["hook"]["delivered"] = 11
            self.assertEqual(sample("registryd_notification_events_delivered_total", endpoint="hook"), 11)
        finally:
            source.stopService()
        self.assertIsNone(
            REGISTRY.get_sample_value("registryd_notification_events_pending", {"endpoint": "hook"})
        )

    def test_health_figures(self) -> None:
        source = metrics.FiguresSource(metrics.HEALTH, lambda: {"good": None, "bad": "broken"})
        source.startService()
        self.addCleanup(source.stopService)
        self.assertEqual(sample("registryd_health_check_up", check="good"), 1)
        self.assertEqual(sample("registryd_health_check_up", check="bad"), 0)

    def test_labelled_children_are_remembered(self) -> None:
        child = metrics.labelled(metrics.REQUESTS, "GET", "test.route", "200")
        self.assertIs(metrics.labelled(metrics.REQUESTS, "GET", "test.route", "200"), child)
        self.assertIs(child, metrics.REQUESTS.labels("GET", "test.route", "200"))
        self.assertIsNot(metrics.labelled(metrics.REQUESTS, "GET", "test.route", "404"), child)

    def test_method_labels_are_bounded(self) -> None:
        self.assertEqual(metrics.methodLabel(b"PATCH"), "PATCH")
        self.assertEqual(metrics.methodLabel("BREW"), "other")


class UploadPurgingMetricTests(TestCase):
    """Each purged upload is counted (a dry run counts nothing); a failed pass is counted."""

    UPLOAD = "/docker/registry/v2/repositories/app/_uploads/{uuid}"

    def purger(self, driver: Any, dryRun: bool) -> Any:
        from twisted.internet.task import Clock

        from registryd.config.storage import UploadPurgingConfig
        from registryd.service import UploadPurger

        return UploadPurger(driver, UploadPurgingConfig(True, 3600.0, 86400.0, dryRun), Clock())

    def test_purges_are_counted(self) -> None:
        from twisted.internet.defer import ensureDeferred

        driver = InMemoryDriver()
        for uuid in ("u1", "u2"):
            self.successResultOf(
                driver.putContent(self.UPLOAD.format(uuid=uuid) + "/startedat", b"2024-01-01T00:00:00Z")
            )
        before = sample("registryd_uploads_purged_total")
        self.successResultOf(ensureDeferred(self.purger(driver, dryRun=True).purge(now=2e9)))
        self.assertEqual(sample("registryd_uploads_purged_total"), before)
        self.successResultOf(ensureDeferred(self.purger(driver, dryRun=False).purge(now=2e9)))
        self.assertEqual(sample("registryd_uploads_purged_total"), before + 2)

    def test_failed_pass_is_counted(self) -> None:
        class Broken(InMemoryDriver):
            def walk(self, path: str, visit: object) -> Deferred:
                raise OSError("disk on fire")

        before = sample("registryd_upload_purge_failures_total")
        self.successResultOf(self.purger(Broken(), dryRun=False)._run())
        self.assertEqual(sample("registryd_upload_purge_failures_total"), before + 1)
        self.flushLoggedErrors(OSError)
