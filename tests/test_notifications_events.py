"""
Tests for L{registryd.notifications.events} and L{registryd.notifications.bridge}: the
events each API request emits, in distribution's exact shape, batched per request, and
none for a request that failed. Driven through the API in memory with a broadcaster that
records the batches it is handed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, timedelta, timezone
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from registryd.auth.interfaces import ANONYMOUS, Access, IAccessController, Identity
from registryd.notifications.bridge import SILENT, EventBridge, NoEvents
from registryd.notifications.events import (
    EventBuilder,
    clientAddress,
    manifestReferences,
    rfc3339Nano,
    sourceRecord,
)
from tests.test_api_base import BASE, OCI_MANIFEST, APIClient, digestOf, makeAPI

SOURCE = {"addr": "registry.example:5000", "instanceID": "4f7c3f5e-0000-4000-8000-000000000001"}
# 2024-05-06T07:08:09.123456789Z
MOMENT = 1714979289_123456789
STAMP = "2024-05-06T07:08:09.123456789Z"
OCTETS = "application/octet-stream"
INDEX = "application/vnd.oci.image.index.v1+json"


@implementer(IAccessController)
class FixedIdentity:
    """An access controller that grants everything to one identity."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    def authorize(self, request: Any, accesses: Sequence[Access]) -> Deferred:
        return succeed(self.identity)


class Recorder:
    """The broadcaster: keeps every batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, events: list[dict[str, Any]]) -> None:
        # What a sink would send: the batch must survive JSON as it is.
        self.batches.append(json.loads(json.dumps(events)))


class EventsTestCase(unittest.TestCase):
    """An API whose requests' events go to C{self.recorder}."""

    includeReferences = False

    def setUp(self) -> None:
        self.api = makeAPI()
        self.recorder = Recorder()
        self.ids = iter(f"event-{n}" for n in range(1, 1000))
        builder = EventBuilder(
            source=dict(SOURCE),
            includeReferences=self.includeReferences,
            now=lambda: MOMENT,
            newID=lambda: next(self.ids),
            zone=UTC,
        )
        self.api.settings.events = EventBridge(builder, self.recorder)
        self.client = APIClient(self.api)

    async def batchOf(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> list[dict]:
        """Send one request; it must succeed and emit exactly one batch, returned."""
        before = len(self.recorder.batches)
        answer = await self.client.request(method, path, body, **kw)
        self.assertLess(answer.code, 400, answer.body)
        self.assertEqual(len(self.recorder.batches), before + 1, self.recorder.batches[before:])
        return self.recorder.batches[-1]

    async def nothingFrom(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> Any:
        """Send one request; it must emit nothing. @return: the answer."""
        before = len(self.recorder.batches)
        answer = await self.client.request(method, path, body, **kw)
        self.assertEqual(self.recorder.batches[before:], [])
        return answer

    def assertEvent(
        self, event: dict, action: str, target: dict, method: str, actor: dict | None = None
    ) -> None:
        """The whole event, key order included (distribution's encoder order)."""
        request = event["request"]
        uuid.UUID(request["id"])
        expected = {
            "id": event["id"],
            "timestamp": STAMP,
            "action": action,
            "target": target,
            "request": {
                "id": request["id"],
                "addr": request["addr"],
                "host": "registry.test",
                "method": method,
                "useragent": "",
            },
            "actor": actor or {},
            "source": SOURCE,
        }
        self.assertEqual(event, expected)
        self.assertEqual(list(event), list(expected))
        self.assertEqual(list(event["target"]), list(target))
        self.assertEqual(list(event["request"]), list(expected["request"]))
        self.assertTrue(event["id"].startswith("event-"))

    def blobTarget(self, name: str, data: bytes, **extra: str) -> dict:
        digest = digestOf(data)
        target = {"mediaType": OCTETS, "digest": digest, "size": len(data), "length": len(data)}
        target["repository"] = name
        target.update(extra)
        target["url"] = f"{BASE}/v2/{name}/blobs/{digest}"
        return target

    async def pushImage(self, name: str, tag: str) -> tuple[str, bytes, dict]:
        """Push an OCI image (config and two layers); @return: manifest digest, bytes, document."""
        config = b'{"architecture":"amd64","os":"linux"}'
        layers = [b"layer one", b"layer two"]
        for blob in [config, *layers]:
            await self.client.pushBlob(name, blob)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digestOf(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digestOf(layer),
                    "size": len(layer),
                    "annotations": {"org.example.layer": str(i)},
                }
                for i, layer in enumerate(layers)
            ],
        }
        digest, content = await self.client.pushManifest(name, tag, document, OCI_MANIFEST)
        return digest, content, document

    def manifestTarget(self, name: str, digest: str, content: bytes, mediaType: str = OCI_MANIFEST) -> dict:
        return {
            "mediaType": mediaType,
            "digest": digest,
            "size": len(content),
            "length": len(content),
            "repository": name,
            "url": f"{BASE}/v2/{name}/manifests/{digest}",
        }


class BlobEventTests(EventsTestCase):
    async def test_monolithic_upload_emits_blob_push(self) -> None:
        data = b"a whole blob"
        [event] = await self.batchOf("POST", f"/v2/team/app/blobs/uploads/?digest={digestOf(data)}", data)
        self.assertEvent(event, "push", self.blobTarget("team/app", data), "POST")

    async def test_chunked_upload_emits_push_only_when_completed(self) -> None:
        data = b"first chunk|second chunk"
        started = await self.nothingFrom("POST", "/v2/team/app/blobs/uploads/")
        self.assertEqual(started.code, 202)
        location = started.header("Location")
        patched = await self.nothingFrom("PATCH", location, data[:12])
        self.assertEqual(patched.code, 202)
        [event] = await self.batchOf(
            "PUT", f"{patched.header('Location')}&digest={digestOf(data)}", data[12:]
        )
        self.assertEvent(event, "push", self.blobTarget("team/app", data), "PUT")

    async def test_get_emits_blob_pull(self) -> None:
        data = b"pull me"
        await self.client.pushBlob("app", data)
        [event] = await self.batchOf("GET", f"/v2/app/blobs/{digestOf(data)}")
        self.assertEvent(event, "pull", self.blobTarget("app", data), "GET")

    async def test_head_emits_blob_pull_as_distribution(self) -> None:
        # distribution serves HEAD with the same handler (ServeBlob), whose listener emits a pull.
        data = b"check me"
        await self.client.pushBlob("app", data)
        [event] = await self.batchOf("HEAD", f"/v2/app/blobs/{digestOf(data)}")
        self.assertEvent(event, "pull", self.blobTarget("app", data), "HEAD")

    async def test_range_and_not_modified_emit_blob_pull_with_the_whole_descriptor(self) -> None:
        data = b"0123456789"
        await self.client.pushBlob("app", data)
        path = f"/v2/app/blobs/{digestOf(data)}"
        [ranged] = await self.batchOf("GET", path, headers={"Range": "bytes=2-4"})
        self.assertEvent(ranged, "pull", self.blobTarget("app", data), "GET")
        [cached] = await self.batchOf("GET", path, headers={"If-None-Match": f'"{digestOf(data)}"'})
        self.assertEvent(cached, "pull", self.blobTarget("app", data), "GET")

    async def test_unknown_blob_and_unsatisfiable_range_emit_nothing(self) -> None:
        answer = await self.nothingFrom("GET", f"/v2/app/blobs/{digestOf(b'none')}")
        self.assertEqual(answer.code, 404)
        await self.client.pushBlob("app", b"short")
        answer = await self.nothingFrom(
            "GET", f"/v2/app/blobs/{digestOf(b'short')}", headers={"Range": "bytes=50-60"}
        )
        self.assertEqual(answer.code, 416)

    async def test_mount_emits_blob_mount_with_from_repository(self) -> None:
        data = b"shared layer"
        await self.client.pushBlob("base/image", data)
        digest = digestOf(data)
        [event] = await self.batchOf("POST", f"/v2/derived/blobs/uploads/?mount={digest}&from=base/image")
        target = self.blobTarget("derived", data, fromRepository="base/image")
        self.assertEvent(event, "mount", target, "POST")

    async def test_failed_mount_starts_an_upload_and_emits_nothing(self) -> None:
        answer = await self.nothingFrom(
            "POST", f"/v2/derived/blobs/uploads/?mount={digestOf(b'absent')}&from=base/image"
        )
        self.assertEqual(answer.code, 202)

    async def test_delete_emits_digest_and_repository_only(self) -> None:
        data = b"to delete"
        await self.client.pushBlob("app", data)
        [event] = await self.batchOf("DELETE", f"/v2/app/blobs/{digestOf(data)}")
        self.assertEvent(event, "delete", {"digest": digestOf(data), "repository": "app"}, "DELETE")

    async def test_failed_upload_emits_nothing(self) -> None:
        answer = await self.nothingFrom(
            "POST", f"/v2/app/blobs/uploads/?digest={digestOf(b'other')}", b"data"
        )
        self.assertEqual(answer.code, 400)


class ManifestEventTests(EventsTestCase):
    async def test_push_by_tag_emits_manifest_push_with_tag(self) -> None:
        before = len(self.recorder.batches)
        digest, content, _ = await self.pushImage("team/app", "v1")
        [event] = self.recorder.batches[-1]
        # pushImage pushed its three blobs (one batch each) and the manifest.
        self.assertEqual(len(self.recorder.batches), before + 4)
        target = self.manifestTarget("team/app", digest, content)
        target["tag"] = "v1"
        self.assertEvent(event, "push", target, "PUT")
        self.assertNotIn("references", event["target"])

    async def test_push_by_digest_has_no_tag_and_each_oci_tag_adds_a_push(self) -> None:
        digest, content, document = await self.pushImage("app", "first")
        path = f"/v2/app/manifests/{digest}?tag=a&tag=b"
        batch = await self.batchOf("PUT", path, content, headers={"Content-Type": OCI_MANIFEST})
        target = self.manifestTarget("app", digest, content)
        self.assertEqual([e["target"].get("tag") for e in batch], [None, "a", "b"])
        self.assertEvent(batch[0], "push", target, "PUT")
        self.assertEvent(batch[2], "push", {**target, "tag": "b"}, "PUT")
        self.assertEqual(len({e["id"] for e in batch}), 3)
        self.assertEqual(len({e["request"]["id"] for e in batch}), 1)

    async def test_get_by_tag_and_by_digest_emit_manifest_pull(self) -> None:
        digest, content, _ = await self.pushImage("app", "v1")
        [byTag] = await self.batchOf("GET", "/v2/app/manifests/v1")
        self.assertEvent(byTag, "pull", {**self.manifestTarget("app", digest, content), "tag": "v1"}, "GET")
        [byDigest] = await self.batchOf("GET", f"/v2/app/manifests/{digest}")
        self.assertEvent(byDigest, "pull", self.manifestTarget("app", digest, content), "GET")

    async def test_head_emits_manifest_pull_as_distribution(self) -> None:
        digest, content, _ = await self.pushImage("app", "v1")
        [event] = await self.batchOf("HEAD", "/v2/app/manifests/v1")
        self.assertEvent(event, "pull", {**self.manifestTarget("app", digest, content), "tag": "v1"}, "HEAD")

    async def test_not_modified_and_unknown_manifest_emit_nothing(self) -> None:
        digest, _, _ = await self.pushImage("app", "v1")
        answer = await self.nothingFrom(
            "GET", "/v2/app/manifests/v1", headers={"If-None-Match": f'"{digest}"'}
        )
        self.assertEqual(answer.code, 304)
        answer = await self.nothingFrom("GET", "/v2/app/manifests/v2")
        self.assertEqual(answer.code, 404)

    async def test_delete_by_digest_emits_manifest_then_each_tag_in_one_batch(self) -> None:
        digest, content, _ = await self.pushImage("app", "v1")
        await self.client.put("/v2/app/manifests/v2", content, headers={"Content-Type": OCI_MANIFEST})
        batch = await self.batchOf("DELETE", f"/v2/app/manifests/{digest}")
        self.assertEqual(len(batch), 3)
        self.assertEvent(batch[0], "delete", {"digest": digest, "repository": "app"}, "DELETE")
        self.assertEqual(
            sorted(e["target"]["tag"] for e in batch[1:]),
            ["v1", "v2"],
        )
        self.assertEvent(
            batch[1], "delete", {"repository": "app", "tag": batch[1]["target"]["tag"]}, "DELETE"
        )

    async def test_delete_by_tag_emits_tag_delete(self) -> None:
        await self.pushImage("app", "v1")
        [event] = await self.batchOf("DELETE", "/v2/app/manifests/v1")
        self.assertEvent(event, "delete", {"repository": "app", "tag": "v1"}, "DELETE")

    async def test_failed_request_emits_nothing_even_after_a_store(self) -> None:
        digest, content, _ = await self.pushImage("app", "v1")
        # The manifest is stored and a push recorded, then the second tag is refused: the
        # request fails, so its batch is never sent.
        answer = await self.nothingFrom(
            "PUT",
            f"/v2/app/manifests/{digest}?tag=ok&tag=-bad",
            content,
            headers={"Content-Type": OCI_MANIFEST},
        )
        self.assertEqual(answer.code, 400, answer.body)
        answer = await self.nothingFrom(
            "PUT", "/v2/app/manifests/v2", b"{not json", headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(answer.code, 400)

    async def test_reads_of_tags_and_catalog_emit_nothing(self) -> None:
        await self.pushImage("app", "v1")
        for path in ["/v2/", "/v2/_catalog", "/v2/app/tags/list"]:
            answer = await self.nothingFrom("GET", path)
            self.assertEqual(answer.code, 200)


class ReferencesTests(EventsTestCase):
    includeReferences = True

    async def test_image_manifest_lists_config_then_layers(self) -> None:
        digest, content, document = await self.pushImage("app", "v1")
        [event] = self.recorder.batches[-1]
        self.assertEqual(event["target"]["references"], [document["config"], *document["layers"]])
        self.assertEqual(list(event["target"])[-1], "references")
        [pulled] = await self.batchOf("GET", "/v2/app/manifests/v1")
        self.assertEqual(pulled["target"]["references"], [document["config"], *document["layers"]])

    async def test_index_lists_its_manifests_with_platforms(self) -> None:
        digest, content, _ = await self.pushImage("app", "amd64")
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {
                    "size": len(content),
                    "digest": digest,
                    "mediaType": OCI_MANIFEST,
                    "platform": {"os": "linux", "architecture": "amd64", "features": ["sse4"]},
                }
            ],
        }
        await self.client.pushManifest("app", "latest", index, INDEX)
        [event] = self.recorder.batches[-1]
        [reference] = event["target"]["references"]
        self.assertEqual(list(reference), ["mediaType", "digest", "size", "platform"])
        self.assertEqual(reference["platform"], {"architecture": "amd64", "os": "linux"})
        self.assertEqual(event["target"]["mediaType"], INDEX)

    def test_references_of_a_document_without_any(self) -> None:
        self.assertEqual(manifestReferences(b"[]"), [])
        self.assertEqual(manifestReferences(b"not json"), [])
        self.assertEqual(
            manifestReferences(b'{"schemaVersion": 2, "config": {"digest": "sha256:x"}}')[0]["size"], 0
        )


class RequestAndActorTests(EventsTestCase):
    async def test_actor_is_the_authenticated_user(self) -> None:
        self.api.settings.accessController = FixedIdentity(Identity("alice", "htpasswd"))
        data = b"by alice"
        [event] = await self.batchOf("POST", f"/v2/app/blobs/uploads/?digest={digestOf(data)}", data)
        self.assertEvent(event, "push", self.blobTarget("app", data), "POST", actor={"name": "alice"})

    async def test_anonymous_actor_is_empty(self) -> None:
        self.api.settings.accessController = FixedIdentity(ANONYMOUS)
        data = b"by nobody"
        [event] = await self.batchOf(
            "POST",
            f"/v2/app/blobs/uploads/?digest={digestOf(data)}",
            data,
            headers={"Authorization": "Basic bWFsbG9yeTp4"},
        )
        self.assertEqual(event["actor"], {})

    async def test_request_record_names_client_host_method_and_agent(self) -> None:
        data = b"from a proxy"
        await self.client.pushBlob("app", data)
        [event] = await self.batchOf(
            "GET",
            f"/v2/app/blobs/{digestOf(data)}",
            headers={"User-Agent": "skopeo/1.13", "X-Forwarded-For": "203.0.113.9, 10.0.0.1"},
        )
        self.assertEqual(event["request"]["addr"], "203.0.113.9")
        self.assertEqual(event["request"]["useragent"], "skopeo/1.13")
        self.assertEqual(event["request"]["method"], "GET")
        self.assertEqual(event["request"]["host"], "registry.test")

    async def test_each_request_has_its_own_request_id(self) -> None:
        first = await self.batchOf("POST", f"/v2/app/blobs/uploads/?digest={digestOf(b'1')}", b"1")
        second = await self.batchOf("POST", f"/v2/app/blobs/uploads/?digest={digestOf(b'2')}", b"2")
        self.assertNotEqual(first[0]["request"]["id"], second[0]["request"]["id"])
        self.assertNotEqual(first[0]["id"], second[0]["id"])

    async def test_urls_follow_the_location_settings(self) -> None:
        self.api.settings.host = "https://registry.example.com"
        data = b"hosted"
        [event] = await self.batchOf("POST", f"/v2/app/blobs/uploads/?digest={digestOf(data)}", data)
        self.assertEqual(
            event["target"]["url"], f"https://registry.example.com/v2/app/blobs/{digestOf(data)}"
        )

    async def test_a_failing_broadcaster_does_not_fail_the_request(self) -> None:
        def broken(events: list) -> None:
            raise RuntimeError("queue on fire")

        self.api.settings.events = EventBridge(EventBuilder(source=dict(SOURCE)), broken)
        answer = await self.client.post(f"/v2/app/blobs/uploads/?digest={digestOf(b'x')}", b"x")
        self.assertEqual(answer.code, 201)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class BridgeTests(unittest.TestCase):
    def bridged(self) -> tuple[Recorder, DummyRequest, Any]:
        recorder = Recorder()
        bridge = EventBridge(EventBuilder(source=dict(SOURCE)), recorder)
        request = DummyRequest([b"v2"])
        recorder_ = bridge.forRequest(request, lambda path: "http://r" + path)
        self.assertIs(bridge.forRequest(request, lambda path: "other"), recorder_)
        return recorder, request, recorder_

    def test_client_gone_broadcasts_nothing(self) -> None:
        recorder, request, events = self.bridged()
        events.blobDeleted("app", "sha256:" + "0" * 64)
        request.processingFailed(Failure(ConnectionError("gone")))
        self.assertEqual(recorder.batches, [])

    def test_finished_request_broadcasts_once(self) -> None:
        recorder, request, events = self.bridged()
        events.blobDeleted("app", "sha256:" + "0" * 64)
        events.tagDeleted("app", "v1")
        request.finish()
        self.assertEqual([[e["action"] for e in b] for b in recorder.batches], [["delete", "delete"]])

    def test_request_without_events_broadcasts_nothing(self) -> None:
        recorder, request, _ = self.bridged()
        request.finish()
        self.assertEqual(recorder.batches, [])

    def test_no_events_is_silent(self) -> None:
        events = NoEvents().forRequest(DummyRequest([b""]), lambda path: path)
        self.assertIs(events, SILENT)
        self.assertFalse(events.enabled)
        events.manifestDeleted("app", "sha256:" + "0" * 64)

    async def test_without_notifications_no_tag_lookup_on_delete(self) -> None:
        # The tags a digest delete removes are looked up only for their events.
        from registryd.api import manifests

        async def refuse(*args: Any) -> list[str]:
            raise AssertionError("looked up tags with nobody listening")

        self.patch(manifests, "tagsPointingAt", refuse)
        api = makeAPI()
        client = APIClient(api)
        digest = await client.pushImage("app", "v1")
        answer = await client.delete(f"/v2/app/manifests/{digest}")
        self.assertEqual(answer.code, 202)
        self.assertEqual((await client.get("/v2/app/manifests/v1")).code, 404)


class FormatTests(unittest.TestCase):
    def test_timestamp_is_rfc3339_nano_as_go_writes_it(self) -> None:
        self.assertEqual(rfc3339Nano(MOMENT, UTC), STAMP)
        self.assertEqual(rfc3339Nano(1714979289_120000000, UTC), "2024-05-06T07:08:09.12Z")
        self.assertEqual(rfc3339Nano(1714979289_000000000, UTC), "2024-05-06T07:08:09Z")
        pacific = timezone(-timedelta(hours=8))
        self.assertEqual(rfc3339Nano(MOMENT, pacific), "2024-05-05T23:08:09.123456789-08:00")
        india = timezone(timedelta(hours=5, minutes=30))
        self.assertEqual(rfc3339Nano(1714979289_000000001, india), "2024-05-06T12:38:09.000000001+05:30")

    def test_source_is_host_name_with_the_listening_port(self) -> None:
        self.assertEqual(sourceRecord(":5000", "xtal.local", "i")["addr"], "xtal.local:5000")
        self.assertEqual(sourceRecord("127.0.0.1:5001", "xtal.local", "i")["addr"], "xtal.local:5001")
        self.assertEqual(sourceRecord("[::1]:5002", "xtal.local", "i")["addr"], "xtal.local:5002")
        self.assertEqual(sourceRecord("/run/registry.sock", "xtal.local", "i")["addr"], "xtal.local")
        self.assertEqual(sourceRecord(":5000", "xtal.local", "i")["instanceID"], "i")
        first, second = sourceRecord(":5000")["instanceID"], sourceRecord(":5000")["instanceID"]
        uuid.UUID(first)
        self.assertNotEqual(first, second)

    def test_client_address_as_go_names_it(self) -> None:
        request = DummyRequest([b""])
        request.client = IPv4Address("TCP", "192.0.2.7", 42961)
        self.assertEqual(clientAddress(request), "192.0.2.7:42961")
        request.client = IPv6Address("TCP", "::1", 4000)
        self.assertEqual(clientAddress(request), "[::1]:4000")
        request.requestHeaders.setRawHeaders(b"X-Forwarded-For", [b"not-an-ip, 10.0.0.1"])
        self.assertEqual(clientAddress(request), "[::1]:4000")
        request.requestHeaders.setRawHeaders(b"X-Real-Ip", [b"198.51.100.2"])
        self.assertEqual(clientAddress(request), "198.51.100.2")
        request.requestHeaders.setRawHeaders(b"X-Forwarded-For", [b"2001:db8::5"])
        self.assertEqual(clientAddress(request), "2001:db8::5")
