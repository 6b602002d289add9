"""
Tests for L{registryd.api}: the base route, the headers every answer carries, routing of
names with slashes, the JSON error shape, read-only mode, health, Location URLs.

The helpers here (L{makeAPI}, L{APIClient}) drive the API in memory, through twisted.web's
own Site, against the real core over the in-memory driver; the other C{test_api_*}
modules use them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from twisted.web.server import Site
from zope.interface import implementer

from registryd.api.app import RegistryAPI
from registryd.api.settings import APISettings
from registryd.api.state import UploadState, packState, unpackState
from registryd.registry.core import Registry
from registryd.registry.errors import BlobUploadInvalid
from registryd.storage.inmemory import InMemoryDriver

BASE = "http://registry.test"


def digestOf(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def makeAPI(
    *, deleteEnabled: bool = True, readOnly: bool = False, driver: Any = None, **settings: Any
) -> RegistryAPI:
    """An API over the real core and a fresh in-memory driver."""
    registry = Registry(driver or InMemoryDriver(), deleteEnabled=deleteEnabled, readOnly=readOnly)
    return RegistryAPI(registry, APISettings(**settings))


@implementer(IBodyProducer)
class _Body:
    """A request body: with a length, or (length None) sent with Transfer-Encoding: chunked in pieces."""

    def __init__(self, data: bytes, chunked: bool, piece: int = 1000) -> None:
        self._data = data
        self._piece = piece
        self.length = UNKNOWN_LENGTH if chunked else len(data)

    def startProducing(self, consumer: Any) -> Deferred:
        for i in range(0, len(self._data), self._piece):
            consumer.write(self._data[i : i + self._piece])
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@dataclass
class Answer:
    code: int
    headers: Headers
    body: bytes
    length: int | None = None
    """The response's Content-Length (twisted's client takes it out of the headers)."""

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode("latin-1") if values else None

    def headerValues(self, name: str) -> list[str]:
        return [v.decode("latin-1") for v in self.headers.getRawHeaders(name.encode(), [])]

    def json(self) -> Any:
        return json.loads(self.body)

    def errorCodes(self) -> list[str]:
        return [e["code"] for e in self.json()["errors"]]


class APIClient:
    """Speaks HTTP to the API's resource in memory (a real Site and HTTP parser on both ends)."""

    def __init__(self, api: RegistryAPI, base: str = BASE) -> None:
        self.api = api
        self.base = base
        self.agent = RequestTraversalAgent(api.resource())

    async def _settle(self, d: Deferred) -> Any:
        # Routes answer asynchronously (the core hashes big chunks in a thread): keep pumping
        # bytes between the in-memory client and server until the result is in. (d.called
        # is not enough: a called Deferred may still wait on a chained one.)
        outcome: list[Any] = []
        d.addBoth(outcome.append)
        while not outcome:
            self.agent.flush()
            if not outcome:
                await deferLater(reactor, 0.001, lambda: None)
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        return outcome[0]

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        chunked: bool = False,
    ) -> Answer:
        url = path if path.startswith("http") else self.base + path
        raw = Headers({k: [v] for k, v in (headers or {}).items()})
        producer = _Body(body, chunked) if body is not None else None
        response = await self._settle(self.agent.request(method.encode(), url.encode(), raw, producer))
        content = await self._settle(readBody(response))
        length = None if response.length is UNKNOWN_LENGTH else response.length
        return Answer(response.code, response.headers, content, length)

    def get(self, path: str, **kw: Any) -> Any:
        return Deferred.fromCoroutine(self.request("GET", path, **kw))

    def head(self, path: str, **kw: Any) -> Any:
        return Deferred.fromCoroutine(self.request("HEAD", path, **kw))

    def put(self, path: str, body: bytes | None = None, **kw: Any) -> Any:
        return Deferred.fromCoroutine(self.request("PUT", path, body, **kw))

    def post(self, path: str, body: bytes | None = None, **kw: Any) -> Any:
        return Deferred.fromCoroutine(self.request("POST", path, body, **kw))

    def patch(self, path: str, body: bytes | None = None, **kw: Any) -> Any:
        return Deferred.fromCoroutine(self.request("PATCH", path, body, **kw))

    def delete(self, path: str, **kw: Any) -> Any:
        return Deferred.fromCoroutine(self.request("DELETE", path, **kw))

    # Flows the other tests build on.

    async def pushBlob(self, name: str, data: bytes) -> str:
        digest = digestOf(data)
        answer = await self.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data)
        assert answer.code == 201, (answer.code, answer.body)
        return digest

    async def pushManifest(
        self, name: str, reference: str, document: dict, mediaType: str
    ) -> tuple[str, bytes]:
        content = json.dumps(document).encode()
        answer = await self.put(
            f"/v2/{name}/manifests/{reference}", content, headers={"Content-Type": mediaType}
        )
        assert answer.code == 201, (answer.code, answer.body)
        return answer.header("Docker-Content-Digest"), content

    async def pushImage(self, name: str, tag: str, layers: list[bytes] | None = None, **extra: Any) -> str:
        """Push a config, layers and an OCI image manifest; return the manifest's digest."""
        config = b'{"architecture":"amd64","os":"linux"}'
        configDigest = await self.pushBlob(name, config)
        descriptors = []
        for layer in layers if layers is not None else [b"layer one"]:
            descriptors.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": await self.pushBlob(name, layer),
                    "size": len(layer),
                }
            )
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": configDigest,
                "size": len(config),
            },
            "layers": descriptors,
            **extra,
        }
        digest, _ = await self.pushManifest(name, tag, document, OCI_MANIFEST)
        return digest


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def rawExchange(api: RegistryAPI, request: bytes) -> bytes:
    """
    Send raw HTTP to the API's resource and return the raw answer: for what twisted's
    client hides (it takes Content-Length out of the headers, and knows HEAD has no body).
    Only for routes that answer synchronously (small in-memory content).
    """
    site = Site(api.resource(), reactor=MemoryReactorClock())
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(request)
    channel.connectionLost(Failure(ConnectionDone()))
    return transport.value()


class APITestCase(unittest.TestCase):
    """Makes C{self.api} and C{self.client} for each test."""

    apiOptions: dict[str, Any] = {}

    def setUp(self) -> None:
        self.api = makeAPI(**self.apiOptions)
        self.client = APIClient(self.api)

    def assertError(self, answer: Answer, code: int, errorCode: str) -> None:
        """The answer is the spec's JSON error document with this status and code."""
        self.assertEqual(answer.code, code, answer.body)
        self.assertEqual(answer.header("Content-Type"), "application/json; charset=utf-8")
        document = answer.json()
        self.assertEqual(list(document), ["errors"])
        self.assertEqual(len(document["errors"]), 1)
        error = document["errors"][0]
        self.assertEqual(set(error), {"code", "message", "detail"})
        self.assertEqual(error["code"], errorCode)
        self.assertIsInstance(error["message"], str)
        self.assertTrue(error["message"])


class BaseTests(APITestCase):
    async def test_base_returns_empty_json_object(self) -> None:
        answer = await self.client.get("/v2/")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.json(), {})
        self.assertTrue(answer.header("Content-Type").startswith("application/json"))
        self.assertEqual(answer.length, 2)

    async def test_every_answer_carries_api_version(self) -> None:
        for method, path in [
            ("GET", "/v2/"),
            ("GET", "/v2/_catalog"),
            ("GET", "/v2/nothing/here/tags/list"),
            ("GET", "/v2/a/manifests/latest"),
            ("HEAD", "/v2/a/blobs/" + digestOf(b"x")),
            ("GET", "/nowhere"),
            ("POST", "/v2/a/b/blobs/uploads/"),
        ]:
            answer = await self.client.request(method, path)
            self.assertEqual(answer.headerValues("Docker-Distribution-API-Version"), ["registry/2.0"], path)

    async def test_configured_headers_on_every_answer(self) -> None:
        client = APIClient(makeAPI(headers={"X-Content-Type-Options": ["nosniff"], "X-Two": ["a", "b"]}))
        for path in ["/v2/", "/v2/a/manifests/missing", "/elsewhere"]:
            answer = await client.get(path)
            self.assertEqual(answer.headerValues("X-Content-Type-Options"), ["nosniff"])
            self.assertEqual(answer.headerValues("X-Two"), ["a", "b"])

    async def test_unknown_path_is_404(self) -> None:
        answer = await self.client.get("/v3/")
        self.assertEqual(answer.code, 404)

    async def test_uppercase_name_does_not_route(self) -> None:
        answer = await self.client.get("/v2/Upper/tags/list")
        self.assertEqual(answer.code, 404)

    async def test_wrong_method_is_405_unsupported(self) -> None:
        answer = await self.client.request("PATCH", "/v2/a/manifests/latest")
        self.assertError(answer, 405, "UNSUPPORTED")

    async def test_name_too_long_is_name_invalid(self) -> None:
        name = "/".join(["abcdefghij"] * 30)
        answer = await self.client.get(f"/v2/{name}/tags/list")
        self.assertError(answer, 400, "NAME_INVALID")


class RoutingTests(APITestCase):
    """Repository names hold slashes, and the route still goes to the right handler."""

    async def test_names_with_slashes_route_to_every_resource(self) -> None:
        name = "a/b/c"
        digest = await self.client.pushImage(name, "v1")
        self.assertEqual((await self.client.get(f"/v2/{name}/manifests/v1")).code, 200)
        self.assertEqual(
            (await self.client.get(f"/v2/{name}/tags/list")).json(), {"name": name, "tags": ["v1"]}
        )
        self.assertEqual((await self.client.get(f"/v2/{name}/referrers/{digest}")).code, 200)
        started = await self.client.post(f"/v2/{name}/blobs/uploads/")
        self.assertEqual(started.code, 202)
        self.assertIn(f"/v2/{name}/blobs/uploads/", started.header("Location"))
        blob = await self.client.get(f"/v2/{name}/blobs/{digestOf(b'layer one')}")
        self.assertEqual(blob.body, b"layer one")

    async def test_names_made_of_route_words(self) -> None:
        name = "blobs/manifests/tags"
        await self.client.pushImage(name, "latest")
        answer = await self.client.get(f"/v2/{name}/tags/list")
        self.assertEqual(answer.json(), {"name": name, "tags": ["latest"]})
        self.assertEqual((await self.client.get(f"/v2/{name}/manifests/latest")).code, 200)


class ErrorShapeTests(APITestCase):
    async def test_error_document_has_code_message_detail(self) -> None:
        answer = await self.client.get("/v2/repo/blobs/" + digestOf(b"absent"))
        self.assertEqual(answer.code, 404)
        answer = await self.client.get("/v2/repo/manifests/absent")
        self.assertError(answer, 404, answer.errorCodes()[0])
        self.assertIn(answer.errorCodes()[0], {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"})

    async def test_json_is_written_as_distribution_writes_it(self) -> None:
        """Compact JSON ending in a newline (Go's encoder), and GET /v2/ exactly C{{}}."""
        answer = await self.client.get("/v2/repo/manifests/absent")
        self.assertEqual(
            answer.body,
            b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown to registry",'
            b'"detail":{"tag":"absent"}}]}\n',
        )
        self.assertEqual((await self.client.get("/v2/")).body, b"{}")

    async def test_unexpected_exception_is_500_unknown_and_logged(self) -> None:
        def broken(name: str) -> Any:
            raise RuntimeError("boom")

        self.api.registry.repository = broken
        answer = await self.client.get("/v2/repo/tags/list")
        self.assertError(answer, 500, "UNKNOWN")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ReadOnlyTests(APITestCase):
    apiOptions = {"readOnly": True}

    async def test_writes_are_405_unsupported(self) -> None:
        digest = digestOf(b"x")
        for method, path in [
            ("POST", "/v2/repo/blobs/uploads/"),
            ("POST", f"/v2/repo/blobs/uploads/?digest={digest}"),
            ("PATCH", "/v2/repo/blobs/uploads/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12),
            ("PUT", "/v2/repo/manifests/latest"),
            ("DELETE", "/v2/repo/manifests/latest"),
            ("DELETE", f"/v2/repo/blobs/{digest}"),
        ]:
            answer = await self.client.request(method, path, b"x")
            self.assertError(answer, 405, "UNSUPPORTED")

    async def test_reads_work(self) -> None:
        writable = makeAPI()
        await APIClient(writable).pushImage("repo", "v1")
        reader = APIClient(RegistryAPI(Registry(writable.registry.driver, readOnly=True), APISettings()))
        self.assertEqual((await reader.get("/v2/repo/manifests/v1")).code, 200)
        self.assertEqual((await reader.get("/v2/repo/tags/list")).json()["tags"], ["v1"])
        self.assertEqual((await reader.get("/v2/_catalog")).json(), {"repositories": ["repo"]})


class HealthTests(unittest.TestCase):
    async def test_failing_health_check_answers_503_unavailable(self) -> None:
        reason: list[str | None] = ["storage driver unreachable"]
        client = APIClient(makeAPI(health=lambda: reason[0]))
        answer = await client.get("/v2/")
        self.assertEqual(answer.code, 503)
        self.assertEqual(answer.errorCodes(), ["UNAVAILABLE"])
        self.assertEqual(answer.json()["errors"][0]["detail"], {"reason": "storage driver unreachable"})
        reason[0] = None
        self.assertEqual((await client.get("/v2/")).code, 200)


class LocationTests(unittest.TestCase):
    """Location URLs: relative, from http.host, or from the request (proxies included); prefix included."""

    async def location(self, headers: dict[str, str] | None = None, **settings: Any) -> str:
        client = APIClient(makeAPI(**settings))
        answer = await client.post("/v2/repo/blobs/uploads/", headers=headers)
        self.assertEqual(answer.code, 202)
        return answer.header("Location")

    async def test_absolute_from_request_host(self) -> None:
        self.assertTrue((await self.location()).startswith("http://registry.test/v2/repo/blobs/uploads/"))

    async def test_relative_urls(self) -> None:
        self.assertTrue((await self.location(relativeURLs=True)).startswith("/v2/repo/blobs/uploads/"))

    async def test_configured_host(self) -> None:
        location = await self.location(host="https://registry.example.com")
        self.assertTrue(location.startswith("https://registry.example.com/v2/repo/blobs/uploads/"))

    async def test_prefix_is_included(self) -> None:
        location = await self.location(prefix="/registry", relativeURLs=True)
        self.assertTrue(location.startswith("/registry/v2/repo/blobs/uploads/"))
        location = await self.location(prefix="registry/", host="https://r.example")
        self.assertTrue(location.startswith("https://r.example/registry/v2/repo/blobs/uploads/"))

    async def test_forwarded_headers_are_honoured(self) -> None:
        location = await self.location(
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "front.example, inner"}
        )
        self.assertTrue(location.startswith("https://front.example/v2/repo/"), location)
        location = await self.location({"Forwarded": 'for=1.2.3.4;proto=https;host="fw.example:8443"'})
        self.assertTrue(location.startswith("https://fw.example:8443/v2/repo/"), location)


class StateTokenTests(unittest.TestCase):
    def test_round_trip(self) -> None:
        state = UploadState("a/b", "u", 12, "2024-01-01T00:00:00+00:00")
        self.assertEqual(unpackState(b"k", packState(b"k", state)), state)

    def test_other_secret_does_not_verify(self) -> None:
        token = packState(b"k", UploadState("a", "u", 0, "t"))
        self.assertRaises(BlobUploadInvalid, unpackState, b"other", token)

    def test_tampered_or_garbage_tokens_do_not_verify(self) -> None:
        token = packState(b"k", UploadState("a", "u", 0, "t"))
        tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        for bad in [tampered, "", "!!!", "abc"]:
            self.assertRaises(BlobUploadInvalid, unpackState, b"k", bad)
