"""
End-to-end: a real C{twistd registryd} process sends notifications to a real HTTP receiver
on loopback run by the test, while skopeo and plain HTTP requests drive the registry.

The receiver records every POST (path, headers, body) in arrival order; it can be started
late (an endpoint that is down), and can hold its answers (a slow endpoint). Waiting for
deliveries polls what arrived; nothing asserts on how long anything took.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.layouts import MEDIA_TYPE_MANIFEST, Image, OCILayout
from tests.support.processes import RegistryProcess, freePort
from tests.support.skopeo import Skopeo

EVENTS_V2 = "application/vnd.docker.distribution.events.v2+json"
OCTETS = "application/octet-stream"


class Receiver:
    """
    A webhook receiver on 127.0.0.1: answers 200 to every POST and records it.

    @ivar posts: every POST as (path, headers, body), in arrival order.
    @ivar answered: how many POSTs it has answered.
    @ivar gate: while cleared, answers are held back (a slow receiver); set by default.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or freePort()
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.answered = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        """The URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        """Listen (again) on the receiver's port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.posts.append((self.path, dict(self.headers.items()), body))
                # Bounded, so a failing test cannot hang here.
                receiver.gate.wait(120)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._lock:
                    receiver.answered += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; held answers are let go first."""
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def envelopes(self, path: str) -> list[list[dict]]:
        """The event lists of the POSTs to path, in arrival order."""
        with self._lock:
            posts = list(self.posts)
        return [json.loads(body)["events"] for p, _, body in posts if p == path]

    def events(self, path: str) -> list[dict]:
        """Every event posted to path, in arrival order."""
        return [event for envelope in self.envelopes(path) for event in envelope]

    def headersOf(self, path: str) -> list[dict[str, str]]:
        """The headers of every POST to path."""
        with self._lock:
            return [headers for p, headers, _ in self.posts if p == path]


def endpoint(name: str, url: str, **options: Any) -> dict:
    """One C{notifications.endpoints} entry with quick retries."""
    return {"name": name, "url": url, "timeout": "10s", "threshold": 3, "backoff": "200ms", **options}


class NotificationsTests(RegistryTestCase):
    """registryd's notifications, received over HTTP."""

    def setUp(self) -> None:
        self.root = self.workDirectory() / "root"
        self.queuePath = self.workDirectory() / "queue.sqlite"
        source = self.workDirectory() / "source"
        layout = OCILayout(source, seed=4)
        self.image: Image = layout.addImage([96 * 1024, 160 * 1024], tag="v1")
        self.source = source

    def receiver(self, start: bool = True) -> Receiver:
        receiver = Receiver()
        self.addCleanup(receiver.stop)
        if start:
            receiver.start()
        return receiver

    def registry(self, *endpoints: dict, **events: Any) -> RegistryProcess:
        notifications: dict = {"endpoints": list(endpoints), "queue": {"path": str(self.queuePath)}}
        if events:
            notifications["events"] = events
        return self.startRegistryd(self.root, notifications=notifications)

    def push(self, registry: RegistryProcess, repository: str = "e2e/app", tag: str = "v1") -> None:
        Skopeo(registry).copy(f"oci:{self.source}:v1", Skopeo(registry).reference(repository, tag))

    def waitUntil(self, condition: Callable[[], bool], what: str, registry: RegistryProcess) -> None:
        """Poll until condition holds; fail naming what did not happen (with the registry's log)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        self.fail(f"never happened: {what}\n--- registryd log ---\n{registry.logTail()}")

    def manifestPushed(self, receiver: Receiver, path: str, tag: str = "v1") -> Callable[[], bool]:
        def check() -> bool:
            return any(
                e["action"] == "push" and e["target"].get("tag") == tag and e["target"]["mediaType"] != OCTETS
                for e in receiver.events(path)
            )

        return check

    def test_skopeo_push_emits_blob_and_manifest_push_events(self) -> None:
        """A push: a push event per blob, then the manifest push with its tag, as distribution writes them."""
        receiver = self.receiver()
        registry = self.registry(endpoint("hook", receiver.url("/hook"), headers={"X-Hook-Token": ["t0ken"]}))
        self.push(registry)
        self.waitUntil(self.manifestPushed(receiver, "/hook"), "the manifest push event", registry)

        events = receiver.events("/hook")
        base = f"http://{registry.host}/v2/e2e/app"
        blobs = {e["target"]["digest"]: e for e in events if e["target"]["mediaType"] == OCTETS}
        expectedBlobs = [self.image.config, *self.image.layers]
        self.assertEqual(set(blobs), {b.digest for b in expectedBlobs})
        for blob in expectedBlobs:
            event = blobs[blob.digest]
            self.assertEqual(event["action"], "push")
            self.assertEqual(
                event["target"],
                {
                    "mediaType": OCTETS,
                    "digest": blob.digest,
                    "size": blob.size,
                    "length": blob.size,
                    "repository": "e2e/app",
                    "url": f"{base}/blobs/{blob.digest}",
                },
            )
        [manifest] = [e for e in events if e["target"]["mediaType"] == MEDIA_TYPE_MANIFEST]
        self.assertEqual(
            manifest["target"],
            {
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": self.image.manifest.digest,
                "size": self.image.manifest.size,
                "length": self.image.manifest.size,
                "repository": "e2e/app",
                "url": f"{base}/manifests/{self.image.manifest.digest}",
                "tag": "v1",
            },
        )
        # The manifest comes after its blobs: it could not have been pushed before them.
        self.assertEqual(events[-1], manifest)
        self.assertEqual(manifest["request"]["method"], "PUT")

        instances = set()
        for event in events:
            self.assertEqual(
                list(event), ["id", "timestamp", "action", "target", "request", "actor", "source"]
            )
            uuid.UUID(event["id"])
            uuid.UUID(event["request"]["id"])
            self.assertRegex(
                event["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$"
            )
            self.assertEqual(event["request"]["host"], registry.host)
            self.assertTrue(event["request"]["addr"].startswith("127.0.0.1:"), event["request"])
            self.assertTrue(event["request"]["useragent"].startswith("skopeo/"), event["request"])
            self.assertEqual(event["actor"], {})
            self.assertEqual(event["source"]["addr"], f"{socket.gethostname()}:{registry.port}")
            instances.add(event["source"]["instanceID"])
        self.assertEqual(len(instances), 1)
        self.assertEqual(len({e["id"] for e in events}), len(events))

        # One POST per API request: every envelope holds the events of one request.
        for envelope in receiver.envelopes("/hook"):
            self.assertEqual(len({e["request"]["id"] for e in envelope}), 1)
        for headers in receiver.headersOf("/hook"):
            self.assertEqual(headers["Content-Type"], EVENTS_V2)
            self.assertEqual(headers["X-Hook-Token"], "t0ken")

    def test_pull_mount_and_delete_events_and_ignore_rules(self) -> None:
        """Pulls, a mount and deletes; an endpoint that ignores pulls and blobs sees only the rest."""
        receiver = self.receiver()
        ignoring = {"actions": ["pull"], "mediatypes": [OCTETS]}
        registry = self.registry(
            endpoint("all", receiver.url("/all")),
            endpoint("filtered", receiver.url("/filtered"), ignore=ignoring),
            includereferences=True,
        )
        skopeo = Skopeo(registry)
        self.push(registry)
        out = self.workDirectory() / "out"
        skopeo.copy(skopeo.reference("e2e/app", "v1"), f"oci:{out}:pulled")

        layer = self.image.layers[0]
        mounted = http.request(
            "POST", f"{registry.url}/v2/e2e/other/blobs/uploads/?mount={layer.digest}&from=e2e/app"
        )
        self.assertEqual(mounted.status, 201, mounted.body)
        skopeo.delete(skopeo.reference("e2e/app", "v1"))
        deleted = http.request("DELETE", f"{registry.url}/v2/e2e/other/blobs/{layer.digest}")
        self.assertEqual(deleted.status, 202, deleted.body)

        def blobDeletedOn(path: str) -> Callable[[], bool]:
            return lambda: any(
                e["action"] == "delete" and e["target"]["repository"] == "e2e/other"
                for e in receiver.events(path)
            )

        self.waitUntil(blobDeletedOn("/all"), "the blob delete event", registry)
        self.waitUntil(blobDeletedOn("/filtered"), "the blob delete event past the ignore rules", registry)

        events = receiver.events("/all")
        base = f"http://{registry.host}/v2"
        pulls = [e for e in events if e["action"] == "pull"]
        # The copy out fetches the manifest by tag; so does skopeo delete, to learn its digest.
        manifestPulls = [e for e in pulls if e["target"]["mediaType"] == MEDIA_TYPE_MANIFEST]
        self.assertEqual(len(manifestPulls), 2)
        manifestPull = manifestPulls[0]
        self.assertEqual(manifestPull["target"]["tag"], "v1")
        self.assertEqual(manifestPull["target"]["digest"], self.image.manifest.digest)
        self.assertEqual(manifestPull["request"]["method"], "GET")
        references = [self.image.config, *self.image.layers]
        self.assertEqual(
            [r["digest"] for r in manifestPull["target"]["references"]], [d.digest for d in references]
        )
        pulledBlobs = {e["target"]["digest"] for e in pulls if e["target"]["mediaType"] == OCTETS}
        self.assertEqual(pulledBlobs, {d.digest for d in references})

        [mount] = [e for e in events if e["action"] == "mount"]
        self.assertEqual(
            mount["target"],
            {
                "mediaType": OCTETS,
                "digest": layer.digest,
                "size": layer.size,
                "length": layer.size,
                "repository": "e2e/other",
                "fromRepository": "e2e/app",
                "url": f"{base}/e2e/other/blobs/{layer.digest}",
            },
        )
        self.assertEqual(mount["request"]["method"], "POST")

        # skopeo deletes by digest: the manifest and the tag that pointed at it, in one request.
        deletes = [e for e in events if e["action"] == "delete"]
        self.assertEqual(
            [e["target"] for e in deletes],
            [
                {"digest": self.image.manifest.digest, "repository": "e2e/app"},
                {"repository": "e2e/app", "tag": "v1"},
                {"digest": layer.digest, "repository": "e2e/other"},
            ],
        )
        self.assertEqual(deletes[0]["request"]["id"], deletes[1]["request"]["id"])

        filtered = receiver.events("/filtered")
        self.assertEqual(
            [(e["action"], e["target"].get("mediaType"), e["target"].get("tag")) for e in filtered],
            [
                ("push", MEDIA_TYPE_MANIFEST, "v1"),
                ("delete", None, None),
                ("delete", None, "v1"),
                ("delete", None, None),
            ],
        )
        self.assertEqual([e["id"] for e in filtered], [e["id"] for e in events if e in filtered])

    def test_receiver_down_then_up_gets_everything_once_in_order(self) -> None:
        """Events for an endpoint that is down wait in its queue and arrive once, in order, when it is up."""
        steady = self.receiver()
        late = self.receiver(start=False)
        registry = self.registry(endpoint("steady", steady.url("/e")), endpoint("late", late.url("/e")))
        self.push(registry)
        self.push(registry, tag="v2")
        self.waitUntil(self.manifestPushed(steady, "/e", "v2"), "the steady endpoint's events", registry)
        self.assertEqual(late.posts, [])

        late.start()
        expected = steady.events("/e")
        self.waitUntil(
            lambda: len(late.events("/e")) >= len(expected), "the late endpoint's backlog", registry
        )
        self.assertEqual(late.events("/e"), expected)
        self.assertEqual(len({e["id"] for e in expected}), len(expected))

    def test_backlog_is_delivered_after_a_restart(self) -> None:
        """Events queued for an endpoint that is down survive a registry restart and are delivered after."""
        steady = self.receiver()
        late = self.receiver(start=False)
        endpoints = [endpoint("steady", steady.url("/e")), endpoint("late", late.url("/e"))]
        registry = self.registry(*endpoints)
        self.push(registry)
        self.waitUntil(self.manifestPushed(steady, "/e"), "the steady endpoint's events", registry)
        expected = steady.events("/e")
        registry.stop()

        late.start()
        restarted = self.registry(*endpoints)
        self.waitUntil(
            lambda: len(late.events("/e")) >= len(expected), "the backlog after the restart", restarted
        )
        self.assertEqual(late.events("/e"), expected)
        # The steady endpoint had nothing left: the restart resent it nothing.
        self.assertEqual(steady.events("/e"), expected)

    def test_a_slow_receiver_does_not_hold_up_pushes(self) -> None:
        """While the receiver holds its answer, a whole push completes; the events follow once it answers."""
        receiver = self.receiver()
        receiver.gate.clear()
        registry = self.registry(endpoint("slow", receiver.url("/slow"), timeout="120s"))
        self.push(registry)
        # The push finished while not one delivery had been answered.
        self.assertEqual(receiver.answered, 0)
        self.waitUntil(lambda: len(receiver.posts) >= 1, "the first delivery attempt", registry)
        self.assertEqual(len(receiver.posts), 1)

        receiver.gate.set()
        self.waitUntil(self.manifestPushed(receiver, "/slow"), "the manifest push after the hold", registry)
        digests = [e["target"]["digest"] for e in receiver.events("/slow")]
        self.assertEqual(
            sorted(digests),
            sorted(d.digest for d in [self.image.config, *self.image.layers, self.image.manifest]),
        )
