"""Tests for blob uploads: POST/PATCH/PUT/GET/DELETE on C{/v2/<name>/blobs/uploads/}, and mounts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from urllib.parse import parse_qs, urlsplit

from twisted.trial.unittest import TestCase

from registryd.api.app import RegistryAPI
from registryd.api.settings import APISettings
from registryd.api.state import UploadState, packState, unpackState
from registryd.registry.core import Registry
from registryd.registry.errors import BlobUploadInvalid
from tests.test_api_base import APIClient, APITestCase, digestOf, makeAPI


def pathOf(location: str) -> str:
    """The path and query of a Location, to send the next request to."""
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


class StartUploadTests(APITestCase):
    async def test_post_starts_upload_with_202_and_headers(self) -> None:
        answer = await self.client.post("/v2/repo/blobs/uploads/")
        self.assertEqual(answer.code, 202)
        uuid = answer.header("Docker-Upload-UUID")
        self.assertTrue(uuid)
        location = answer.header("Location")
        self.assertEqual(urlsplit(location).path, f"/v2/repo/blobs/uploads/{uuid}")
        self.assertIn("_state", parse_qs(urlsplit(location).query))
        self.assertEqual(answer.header("Range"), "0-0")
        self.assertEqual(answer.length, 0)
        self.assertEqual(answer.body, b"")

    async def test_monolithic_post_with_digest_is_201(self) -> None:
        data = b"monolithic blob"
        digest = digestOf(data)
        answer = await self.client.post(f"/v2/repo/blobs/uploads/?digest={digest}", data)
        self.assertEqual(answer.code, 201)
        self.assertEqual(answer.header("Location"), f"http://registry.test/v2/repo/blobs/{digest}")
        self.assertEqual(answer.header("Docker-Content-Digest"), digest)
        self.assertEqual((await self.client.get(f"/v2/repo/blobs/{digest}")).body, data)

    async def test_monolithic_post_with_wrong_digest_is_400_and_leaves_nothing(self) -> None:
        wrong = digestOf(b"something else")
        answer = await self.client.post(f"/v2/repo/blobs/uploads/?digest={wrong}", b"content")
        self.assertError(answer, 400, "DIGEST_INVALID")
        self.assertEqual((await self.client.head(f"/v2/repo/blobs/{wrong}")).code, 404)
        driver = self.api.registry.driver
        uploads = [p for p in driver._files if "/_uploads/" in p] + [
            p for p in driver._pending if "/_uploads/" in p
        ]
        self.assertEqual(uploads, [])

    async def test_monolithic_post_with_malformed_digest_is_400(self) -> None:
        answer = await self.client.post("/v2/repo/blobs/uploads/?digest=sha256:nothex", b"content")
        self.assertError(answer, 400, "DIGEST_INVALID")

    async def test_monolithic_post_chunked_body(self) -> None:
        data = os.urandom(300_000)
        digest = digestOf(data)
        answer = await self.client.request(
            "POST", f"/v2/repo/blobs/uploads/?digest={digest}", data, chunked=True
        )
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual((await self.client.get(f"/v2/repo/blobs/{digest}")).body, data)

    async def test_monolithic_post_with_short_content_length_is_rejected(self) -> None:
        # Twisted parses the body by Content-Length; a longer declared length never completes,
        # so check the opposite: a declared size that the digest does not match.
        data = b"abc"
        answer = await self.client.post(f"/v2/repo/blobs/uploads/?digest={digestOf(b'abcd')}", data)
        self.assertError(answer, 400, "DIGEST_INVALID")


class MountTests(APITestCase):
    async def test_mount_from_repository_is_201(self) -> None:
        digest = await self.client.pushBlob("source/repo", b"shared layer")
        answer = await self.client.post(f"/v2/target/blobs/uploads/?mount={digest}&from=source/repo")
        self.assertEqual(answer.code, 201)
        self.assertEqual(answer.header("Location"), f"http://registry.test/v2/target/blobs/{digest}")
        self.assertEqual(answer.header("Docker-Content-Digest"), digest)
        self.assertEqual((await self.client.get(f"/v2/target/blobs/{digest}")).body, b"shared layer")

    async def test_mount_of_unknown_blob_starts_upload(self) -> None:
        digest = digestOf(b"nobody has this")
        answer = await self.client.post(f"/v2/target/blobs/uploads/?mount={digest}&from=source")
        self.assertEqual(answer.code, 202)
        self.assertTrue(answer.header("Docker-Upload-UUID"))
        self.assertIn("/v2/target/blobs/uploads/", answer.header("Location"))

    async def test_mount_from_repository_without_blob_starts_upload(self) -> None:
        digest = await self.client.pushBlob("other", b"layer")
        answer = await self.client.post(f"/v2/target/blobs/uploads/?mount={digest}&from=source")
        self.assertEqual(answer.code, 202)

    async def test_mount_without_from_uses_known_blob(self) -> None:
        digest = await self.client.pushBlob("somewhere", b"known layer")
        answer = await self.client.post(f"/v2/target/blobs/uploads/?mount={digest}")
        self.assertEqual(answer.code, 201)
        self.assertEqual((await self.client.get(f"/v2/target/blobs/{digest}")).body, b"known layer")

    async def test_mount_with_invalid_from_starts_upload(self) -> None:
        digest = await self.client.pushBlob("source", b"layer")
        answer = await self.client.post(f"/v2/target/blobs/uploads/?mount={digest}&from=Not%20A%20Name")
        self.assertEqual(answer.code, 202)


class ChunkedUploadTests(APITestCase):
    async def start(self, name: str = "repo") -> str:
        answer = await self.client.post(f"/v2/{name}/blobs/uploads/")
        self.assertEqual(answer.code, 202)
        return pathOf(answer.header("Location"))

    async def test_chunked_upload_flow(self) -> None:
        data = os.urandom(5000)
        location = await self.start()
        first = await self.client.patch(location, data[:2000], headers={"Content-Range": "0-1999"})
        self.assertEqual(first.code, 202)
        self.assertEqual(first.header("Range"), "0-1999")
        self.assertEqual(first.length, 0)
        self.assertTrue(first.header("Docker-Upload-UUID"))
        second = await self.client.patch(
            pathOf(first.header("Location")), data[2000:4000], headers={"Content-Range": "2000-3999"}
        )
        self.assertEqual(second.code, 202)
        self.assertEqual(second.header("Range"), "0-3999")
        digest = digestOf(data)
        done = await self.client.put(
            pathOf(second.header("Location")) + f"&digest={digest}",
            data[4000:],
            headers={"Content-Range": "4000-4999"},
        )
        self.assertEqual(done.code, 201, done.body)
        self.assertEqual(done.header("Location"), f"http://registry.test/v2/repo/blobs/{digest}")
        self.assertEqual(done.header("Docker-Content-Digest"), digest)
        self.assertEqual((await self.client.get(f"/v2/repo/blobs/{digest}")).body, data)

    async def test_patch_without_content_range_appends(self) -> None:
        location = await self.start()
        answer = await self.client.patch(location, b"hello ")
        answer = await self.client.patch(pathOf(answer.header("Location")), b"world")
        self.assertEqual(answer.code, 202)
        self.assertEqual(answer.header("Range"), "0-10")
        digest = digestOf(b"hello world")
        done = await self.client.put(pathOf(answer.header("Location")) + f"&digest={digest}")
        self.assertEqual(done.code, 201)

    async def test_patch_with_chunked_transfer_encoding(self) -> None:
        data = os.urandom(400_000)
        location = await self.start()
        answer = await self.client.request("PATCH", location, data, chunked=True)
        self.assertEqual(answer.code, 202, answer.body)
        self.assertEqual(answer.header("Range"), f"0-{len(data) - 1}")
        done = await self.client.put(pathOf(answer.header("Location")) + f"&digest={digestOf(data)}")
        self.assertEqual(done.code, 201, done.body)
        self.assertEqual((await self.client.get(f"/v2/repo/blobs/{digestOf(data)}")).body, data)

    async def test_patch_out_of_order_returns_416(self) -> None:
        location = await self.start()
        answer = await self.client.patch(location, b"abcd", headers={"Content-Range": "10-13"})
        self.assertError(answer, 416, "RANGE_INVALID")
        self.assertEqual(answer.header("Range"), "0-0")
        self.assertIn("/v2/repo/blobs/uploads/", answer.header("Location"))
        self.assertTrue(answer.header("Docker-Upload-UUID"))

    async def test_repeated_chunk_returns_416(self) -> None:
        location = await self.start()
        first = await self.client.patch(location, b"abcd", headers={"Content-Range": "0-3"})
        self.assertEqual(first.code, 202)
        again = await self.client.patch(
            pathOf(first.header("Location")), b"abcd", headers={"Content-Range": "0-3"}
        )
        self.assertError(again, 416, "RANGE_INVALID")
        self.assertEqual(again.header("Range"), "0-3")

    async def test_malformed_content_range_returns_416(self) -> None:
        location = await self.start()
        answer = await self.client.patch(location, b"abcd", headers={"Content-Range": "zero-three"})
        self.assertError(answer, 416, "RANGE_INVALID")

    async def test_content_range_not_matching_length_is_size_invalid(self) -> None:
        location = await self.start()
        answer = await self.client.patch(location, b"abcd", headers={"Content-Range": "0-9"})
        self.assertError(answer, 400, "SIZE_INVALID")

    async def test_put_out_of_order_final_chunk_returns_416(self) -> None:
        location = await self.start()
        answer = await self.client.put(
            location + f"&digest={digestOf(b'xyz')}", b"xyz", headers={"Content-Range": "5-7"}
        )
        self.assertError(answer, 416, "RANGE_INVALID")

    async def test_put_without_digest_is_400_digest_invalid(self) -> None:
        location = await self.start()
        answer = await self.client.put(location, b"")
        self.assertError(answer, 400, "DIGEST_INVALID")

    async def test_put_with_wrong_digest_is_400_and_removes_upload(self) -> None:
        location = await self.start()
        answer = await self.client.patch(location, b"payload")
        done = await self.client.put(pathOf(answer.header("Location")) + f"&digest={digestOf(b'other')}")
        self.assertError(done, 400, "DIGEST_INVALID")
        status = await self.client.get(pathOf(answer.header("Location")))
        self.assertError(status, 404, "BLOB_UPLOAD_UNKNOWN")

    async def test_put_with_whole_body_after_post(self) -> None:
        location = await self.start()
        data = b"posted then put"
        answer = await self.client.put(location + f"&digest={digestOf(data)}", data)
        self.assertEqual(answer.code, 201)
        self.assertEqual((await self.client.get(f"/v2/repo/blobs/{digestOf(data)}")).body, data)

    async def test_get_upload_status_is_204_with_range(self) -> None:
        location = await self.start()
        await self.client.patch(location, b"12345")
        answer = await self.client.get(location)
        self.assertEqual(answer.code, 204)
        self.assertEqual(answer.header("Range"), "0-4")
        self.assertTrue(answer.header("Docker-Upload-UUID"))
        self.assertIn("/v2/repo/blobs/uploads/", answer.header("Location"))

    async def test_delete_upload_is_204_and_forgets_it(self) -> None:
        location = await self.start()
        answer = await self.client.delete(location)
        self.assertEqual(answer.code, 204)
        self.assertError(await self.client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(await self.client.patch(location, b"x"), 404, "BLOB_UPLOAD_UNKNOWN")

    async def test_unknown_upload_is_404(self) -> None:
        for uuid in ["3f2b8a4e-1111-4222-8333-444455556666", "not-a-uuid", "..", "a=b"]:
            for method in ["GET", "PATCH", "PUT", "DELETE"]:
                answer = await self.client.request(method, f"/v2/repo/blobs/uploads/{uuid}", b"")
                self.assertError(answer, 404, "BLOB_UPLOAD_UNKNOWN")

    async def test_state_of_another_upload_is_400_blob_upload_invalid(self) -> None:
        one = urlsplit("http://x" + await self.start())
        two = urlsplit("http://x" + await self.start())
        answer = await self.client.get(f"{one.path}?{two.query}")
        self.assertError(answer, 400, "BLOB_UPLOAD_INVALID")

    async def test_forged_state_is_400_blob_upload_invalid(self) -> None:
        location = urlsplit("http://x" + await self.start())
        uuid = location.path.rsplit("/", 1)[1]
        forged = packState(b"not the secret", UploadState("repo", uuid, 0, "2024-01-01T00:00:00+00:00"))
        answer = await self.client.patch(f"{location.path}?_state={forged}", b"x")
        self.assertError(answer, 400, "BLOB_UPLOAD_INVALID")
        answer = await self.client.get(f"{location.path}?_state=garbage")
        self.assertError(answer, 400, "BLOB_UPLOAD_INVALID")

    async def test_upload_url_of_one_repository_refused_on_another(self) -> None:
        location = urlsplit("http://x" + await self.start("one"))
        uuid = location.path.rsplit("/", 1)[1]
        answer = await self.client.get(f"/v2/two/blobs/uploads/{uuid}?{location.query}")
        self.assertError(answer, 400, "BLOB_UPLOAD_INVALID")

    async def test_upload_continues_on_another_process_sharing_storage_and_secret(self) -> None:
        secret = b"shared secret"
        first = makeAPI(secret=secret)
        second = RegistryAPI(Registry(first.registry.driver, deleteEnabled=True), APISettings(secret=secret))
        a, b = APIClient(first), APIClient(second)
        started = await a.post("/v2/repo/blobs/uploads/")
        patched = await b.patch(
            pathOf(started.header("Location")), b"part one ", headers={"Content-Range": "0-8"}
        )
        self.assertEqual(patched.code, 202, patched.body)
        patched = await a.patch(
            pathOf(patched.header("Location")), b"part two", headers={"Content-Range": "9-16"}
        )
        self.assertEqual(patched.header("Range"), "0-16")
        digest = digestOf(b"part one part two")
        done = await b.put(pathOf(patched.header("Location")) + f"&digest={digest}")
        self.assertEqual(done.code, 201, done.body)
        self.assertEqual((await a.get(f"/v2/repo/blobs/{digest}")).body, b"part one part two")

    async def test_upload_url_from_other_secret_is_refused(self) -> None:
        first = makeAPI(secret=b"one")
        second = RegistryAPI(Registry(first.registry.driver), APISettings(secret=b"two"))
        started = await APIClient(first).post("/v2/repo/blobs/uploads/")
        answer = await APIClient(second).get(pathOf(started.header("Location")))
        self.assertError(answer, 400, "BLOB_UPLOAD_INVALID")

    async def test_upload_without_state_is_accepted(self) -> None:
        location = urlsplit("http://x" + await self.start())
        answer = await self.client.patch(location.path, b"abc")
        self.assertEqual(answer.code, 202)
        self.assertEqual(answer.header("Range"), "0-2")


class UploadStateTokenTests(TestCase):
    """The _state token in distribution's form, so the two can take up each other's uploads."""

    secret = b"shared"

    def test_padded_base64_of_mac_and_json(self) -> None:
        state = UploadState(name="a/b", uuid="u", offset=5, startedAt="2025-01-02T03:04:05Z")
        token = packState(self.secret, state)
        raw = base64.urlsafe_b64decode(token)  # padded: Go's base64.URLEncoding decodes it
        self.assertEqual(len(token) % 4, 0)
        payload = raw[32:]
        self.assertEqual(raw[:32], hmac.new(self.secret, payload, hashlib.sha256).digest())
        self.assertEqual(unpackState(self.secret, token), state)
        self.assertEqual(unpackState(self.secret, token.rstrip("=")), state)  # as we once wrote them

    def test_distributions_token_is_read(self) -> None:
        payload = json.dumps(
            {"Name": "a/b", "UUID": "u", "Offset": 7, "StartedAt": "2025-01-02T03:04:05.123456789Z"}
        ).encode()
        token = base64.urlsafe_b64encode(hmac.new(self.secret, payload, hashlib.sha256).digest() + payload)
        state = unpackState(self.secret, token.decode())
        self.assertEqual((state.name, state.uuid, state.offset), ("a/b", "u", 7))
        self.assertEqual(state.startedAt, "2025-01-02T03:04:05.123456789Z")

    def test_not_an_object(self) -> None:
        payload = b"[1, 2]"
        token = base64.urlsafe_b64encode(hmac.new(self.secret, payload, hashlib.sha256).digest() + payload)
        self.assertRaises(BlobUploadInvalid, unpackState, self.secret, token.decode())
