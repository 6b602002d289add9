"""
The debug server over real sockets: metrics scraped from http.debug.addr and parsed with
prometheus-client's parser after real API traffic, /debug/health in distribution's shape,
and the http.debug configuration.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from registryd.config import ConfigError, parseDocument
from registryd.config.http import DebugConfig, parseHTTP
from registryd.service import ListenFailed, makeService

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def configuration(root: Path, **extra: Any) -> Any:
    """An in-memory registry and its debug server on free loopback ports."""
    document: dict[str, Any] = {
        "version": "0.1",
        "storage": {"inmemory": None, "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {
            "addr": "127.0.0.1:0",
            "secret": "test",
            "debug": {"addr": "127.0.0.1:0", "prometheus": {"enabled": True, "path": "/scrape"}},
        },
        "health": {"file": [{"file": str(root / "out-of-rotation"), "interval": "1h"}]},
        "notifications": {
            "queue": {"path": str(root / "queue.sqlite")},
            # Nothing listens on port 9: events stay pending.
            "endpoints": [{"name": "hook", "url": "http://127.0.0.1:9/", "threshold": 1, "backoff": "1h"}],
        },
    }
    document.update(extra)
    return parseDocument(document)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


class DebugServerTests(TestCase):
    """The whole service, the API and the debug server each on a real socket."""

    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.root = Path(self.mktemp())
        self.root.mkdir()

    async def _start(self, config: Any) -> tuple[str, str]:
        service = makeService(config, reactor)
        self.service = service
        service.startService()
        self.addCleanup(service.stopService)
        api = await service.getServiceNamed("http")._waitingForPort
        debug = await service.getServiceNamed("http.debug")._waitingForPort
        return f"http://127.0.0.1:{api.getHost().port}", f"http://127.0.0.1:{debug.getHost().port}"

    async def _request(self, method: str, url: str, **kwargs: Any) -> tuple[int, bytes, Any]:
        response = await treq.request(method, url, pool=self.pool, **kwargs)
        return response.code, await treq.content(response), response.headers

    async def _scrape(self, debug: str) -> dict:
        code, body, headers = await self._request("GET", f"{debug}/scrape")
        self.assertEqual(code, 200)
        self.assertTrue(headers.getRawHeaders("Content-Type")[0].startswith("text/plain"))
        return samples(body.decode("utf-8"))

    async def _push(self, base: str) -> tuple[str, bytes]:
        layer = b"layer bytes"
        layerDigest = "sha256:" + hashlib.sha256(layer).hexdigest()
        code, _, _ = await self._request(
            "POST", f"{base}/v2/app/blobs/uploads/?digest={layerDigest}", data=layer
        )
        self.assertEqual(code, 201)
        config = b"{}"
        configDigest = "sha256:" + hashlib.sha256(config).hexdigest()
        code, _, _ = await self._request(
            "POST", f"{base}/v2/app/blobs/uploads/?digest={configDigest}", data=config
        )
        self.assertEqual(code, 201)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": configDigest,
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layerDigest,
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        code, _, _ = await self._request(
            "PUT", f"{base}/v2/app/manifests/v1", data=manifest, headers={"Content-Type": MANIFEST_TYPE}
        )
        self.assertEqual(code, 201)
        return layerDigest, layer

    def test_metrics_after_traffic(self) -> Deferred:
        async def run() -> None:
            base, debug = await self._start(configuration(self.root))
            before = await self._scrape(debug)
            layerDigest, layer = await self._push(base)
            code, body, _ = await self._request("GET", f"{base}/v2/app/blobs/{layerDigest}")
            self.assertEqual((code, body), (200, layer))
            code, _, _ = await self._request(
                "GET", f"{base}/v2/app/manifests/v1", headers={"Accept": MANIFEST_TYPE}
            )
            self.assertEqual(code, 200)
            code, _, _ = await self._request("GET", f"{base}/v2/app/manifests/missing")
            self.assertEqual(code, 404)
            code, _, _ = await self._request("GET", f"{base}/not/the/api")
            self.assertEqual(code, 404)
            after = await self._scrape(debug)

            def delta(name: str, **labels: str) -> float:
                return value(after, name, **labels) - value(before, name, **labels)

            requests = "registryd_http_requests_total"
            self.assertEqual(delta(requests, method="POST", route="uploads.start", status="201"), 2)
            self.assertEqual(delta(requests, method="PUT", route="manifest.put", status="201"), 1)
            self.assertEqual(delta(requests, method="GET", route="blob.get", status="200"), 1)
            self.assertEqual(delta(requests, method="GET", route="manifest.get", status="200"), 1)
            self.assertEqual(delta(requests, method="GET", route="manifest.get", status="404"), 1)
            # Raw paths never become labels.
            self.assertEqual(delta(requests, method="GET", route="unmatched", status="404"), 1)
            self.assertFalse([key for key in after if "/not/the/api" in str(key)])
            self.assertEqual(
                delta("registryd_http_request_duration_seconds_count", method="GET", route="blob.get"), 1
            )
            self.assertEqual(
                delta("registryd_http_request_bytes_total", route="uploads.start"), len(layer) + 2
            )
            self.assertEqual(delta("registryd_http_response_bytes_total", route="blob.get"), len(layer))
            self.assertEqual(delta("registryd_uploads_total", kind="blob"), 2)
            self.assertEqual(delta("registryd_uploads_total", kind="manifest"), 1)
            self.assertEqual(delta("registryd_downloads_total", kind="blob"), 1)
            self.assertEqual(delta("registryd_downloads_total", kind="manifest"), 1)
            self.assertGreater(
                delta(
                    "registryd_storage_operation_duration_seconds_count",
                    driver="inmemory",
                    operation="putContent",
                ),
                0,
            )
            self.assertGreater(
                delta(
                    "registryd_storage_errors_total",
                    driver="inmemory",
                    operation="getContent",
                    error="PathNotFound",
                )
                + delta(
                    "registryd_storage_errors_total",
                    driver="inmemory",
                    operation="stat",
                    error="PathNotFound",
                ),
                0,
            )
            self.assertEqual(
                value(after, "registryd_health_check_up", check=str(self.root / "out-of-rotation")), 1
            )
            # The pushes' events wait for an endpoint that does not answer.
            self.assertGreater(value(after, "registryd_notification_events_pending", endpoint="hook"), 0)
            self.assertIn(("registryd_notification_events_dropped_total", (("endpoint", "hook"),)), after)

        return ensureDeferred(run())

    def test_openmetrics_when_asked(self) -> Deferred:
        async def run() -> None:
            _, debug = await self._start(configuration(self.root))
            code, body, headers = await self._request(
                "GET", f"{debug}/scrape", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )
            self.assertEqual(code, 200)
            self.assertIn("openmetrics", headers.getRawHeaders("Content-Type")[0])
            self.assertTrue(body.endswith(b"# EOF\n"))

        return ensureDeferred(run())

    def test_health_names_the_failing_check(self) -> Deferred:
        async def run() -> None:
            flag = self.root / "out-of-rotation"
            base, debug = await self._start(configuration(self.root))
            code, body, headers = await self._request("GET", f"{debug}/debug/health")
            self.assertEqual((code, json.loads(body)), (200, {}))
            self.assertEqual(headers.getRawHeaders("Content-Type"), ["application/json; charset=utf-8"])
            flag.write_text("")
            # Run the checks now rather than wait out their interval.
            for check in self.service.getServiceNamed("health").checks:
                await check.check()
            code, body, _ = await self._request("GET", f"{debug}/debug/health")
            self.assertEqual((code, json.loads(body)), (503, {str(flag): f"file {flag} exists"}))
            code, body, _ = await self._request("GET", f"{base}/v2/")
            self.assertEqual(code, 503)
            self.assertEqual(json.loads(body)["errors"][0]["code"], "UNAVAILABLE")
            code, _, _ = await self._request("POST", f"{debug}/debug/health")
            self.assertEqual(code, 404)

        return ensureDeferred(run())

    def test_metrics_off_unless_enabled(self) -> Deferred:
        async def run() -> None:
            config = configuration(
                self.root, http={"addr": "127.0.0.1:0", "secret": "t", "debug": {"addr": "127.0.0.1:0"}}
            )
            _, debug = await self._start(config)
            code, _, _ = await self._request("GET", f"{debug}/metrics")
            self.assertEqual(code, 404)
            code, _, _ = await self._request("GET", f"{debug}/debug/health")
            self.assertEqual(code, 200)

        return ensureDeferred(run())

    def test_debug_port_in_use_names_the_key(self) -> Deferred:
        async def run() -> None:
            _, debug = await self._start(configuration(self.root))
            port = debug.rsplit(":", 1)[1]
            second = makeService(
                configuration(
                    self.root / "second",
                    http={"addr": "127.0.0.1:0", "secret": "t", "debug": {"addr": f"127.0.0.1:{port}"}},
                    notifications={},
                ),
                reactor,
            )
            error = self.assertRaises(
                ListenFailed, second.getServiceNamed("http.debug").privilegedStartService
            )
            self.assertIn(f"http.debug.addr: cannot listen on 127.0.0.1:{port}", str(error))

        return ensureDeferred(run())


class DebugConfigTests(TestCase):
    """http.debug: addr, prometheus.enabled and path; mistakes name the key."""

    def test_parse(self) -> None:
        config = parseHTTP({"debug": {"addr": "localhost:5001", "prometheus": {"enabled": True}}})
        self.assertEqual(config.debug, DebugConfig("localhost:5001", True, "/metrics"))
        self.assertEqual(config.debug.endpoint(), "tcp:5001:interface=localhost")
        self.assertIsNone(parseHTTP({}).debug)
        self.assertIsNone(parseHTTP({"debug": {"addr": ""}}).debug)

    def test_mistakes(self) -> None:
        for section, keyPath in [
            ({"addr": "nonsense"}, ("http", "debug", "addr")),
            ({"prometheus": {"enabled": True}}, ("http", "debug", "addr")),
            ({"addr": ":5001", "prometheus": {"path": "metrics"}}, ("http", "debug", "prometheus", "path")),
            (
                {"addr": ":5001", "prometheus": {"path": "/debug/health"}},
                ("http", "debug", "prometheus", "path"),
            ),
            ({"addr": ":5001", "pprof": {"enabled": True}}, ("http", "debug", "pprof")),
        ]:
            error = self.assertRaises(ConfigError, parseHTTP, {"debug": section})
            self.assertEqual(error.keyPath, keyPath, section)
