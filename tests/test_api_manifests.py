"""Tests for C{/v2/<name>/manifests/<reference>}: GET, HEAD, PUT, DELETE by tag and by digest."""

from __future__ import annotations

import json

from tests.test_api_base import OCI_MANIFEST, APITestCase, digestOf, rawExchange

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class ManifestTests(APITestCase):
    async def manifestFor(self, name: str, layer: bytes = b"layer") -> tuple[dict, bytes]:
        config = b'{"architecture":"amd64","os":"linux"}'
        configDigest = await self.client.pushBlob(name, config)
        layerDigest = await self.client.pushBlob(name, layer)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": configDigest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layerDigest,
                    "size": len(layer),
                }
            ],
        }
        # Unusual spacing: the registry must keep the exact bytes.
        return document, json.dumps(document, indent=3).encode()

    async def test_put_by_tag_is_201_and_get_returns_exact_bytes(self) -> None:
        _, content = await self.manifestFor("repo")
        digest = digestOf(content)
        answer = await self.client.put(
            "/v2/repo/manifests/v1", content, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(answer.header("Location"), f"http://registry.test/v2/repo/manifests/{digest}")
        self.assertEqual(answer.header("Docker-Content-Digest"), digest)
        self.assertIsNone(answer.header("OCI-Subject"))
        for reference in ["v1", digest]:
            got = await self.client.get(f"/v2/repo/manifests/{reference}")
            self.assertEqual(got.code, 200)
            self.assertEqual(got.body, content)
            self.assertEqual(got.header("Content-Type"), OCI_MANIFEST)
            self.assertEqual(got.header("Docker-Content-Digest"), digest)
            self.assertEqual(got.header("ETag"), f'"{digest}"')
            self.assertEqual(got.length, len(content))

    async def test_head_manifest(self) -> None:
        _, content = await self.manifestFor("repo")
        await self.client.put("/v2/repo/manifests/v1", content, headers={"Content-Type": OCI_MANIFEST})
        answer = await self.client.head("/v2/repo/manifests/v1")
        self.assertEqual((answer.code, answer.body), (200, b""))
        self.assertEqual(answer.header("Docker-Content-Digest"), digestOf(content))
        self.assertEqual(answer.header("Content-Type"), OCI_MANIFEST)
        raw = rawExchange(self.api, b"HEAD /v2/repo/manifests/v1 HTTP/1.1\r\nHost: r\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertIn(b"\r\nContent-Length: %d\r\n" % (len(content),), head + b"\r\n")
        self.assertEqual(body, b"")

    async def test_put_by_digest(self) -> None:
        _, content = await self.manifestFor("repo")
        digest = digestOf(content)
        answer = await self.client.put(
            f"/v2/repo/manifests/{digest}", content, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual((await self.client.get(f"/v2/repo/manifests/{digest}")).body, content)

    async def test_put_by_digest_with_tags_answers_oci_tag(self) -> None:
        _, content = await self.manifestFor("repo")
        digest = digestOf(content)
        answer = await self.client.put(
            f"/v2/repo/manifests/{digest}?tag=one&tag=two", content, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(answer.headerValues("OCI-Tag"), ["one", "two"])
        self.assertEqual((await self.client.get("/v2/repo/tags/list")).json()["tags"], ["one", "two"])

    async def test_put_by_wrong_digest_is_400(self) -> None:
        _, content = await self.manifestFor("repo")
        answer = await self.client.put(
            f"/v2/repo/manifests/{digestOf(b'other')}", content, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertError(answer, 400, "DIGEST_INVALID")

    async def test_put_with_subject_answers_oci_subject(self) -> None:
        document, content = await self.manifestFor("repo")
        subject = digestOf(content)
        await self.client.put("/v2/repo/manifests/v1", content, headers={"Content-Type": OCI_MANIFEST})
        referrer = dict(
            document, subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": len(content)}
        )
        referrer["artifactType"] = "application/vnd.example.sbom"
        answer = await self.client.put(
            "/v2/repo/manifests/sbom", json.dumps(referrer).encode(), headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(answer.header("OCI-Subject"), subject)

    async def test_content_type_parameters_are_ignored(self) -> None:
        _, content = await self.manifestFor("repo")
        answer = await self.client.put(
            "/v2/repo/manifests/v1", content, headers={"Content-Type": OCI_MANIFEST + "; charset=utf-8"}
        )
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(
            (await self.client.get("/v2/repo/manifests/v1")).header("Content-Type"), OCI_MANIFEST
        )

    async def test_invalid_json_is_manifest_invalid(self) -> None:
        answer = await self.client.put(
            "/v2/repo/manifests/v1", b"{not json", headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertError(answer, 400, "MANIFEST_INVALID")

    async def test_missing_blob_is_manifest_blob_unknown(self) -> None:
        document, _ = await self.manifestFor("repo")
        document["layers"][0]["digest"] = digestOf(b"never pushed")
        answer = await self.client.put(
            "/v2/repo/manifests/v1", json.dumps(document).encode(), headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertError(answer, 400, "MANIFEST_BLOB_UNKNOWN")

    async def test_manifest_over_4_mib_is_413(self) -> None:
        document, _ = await self.manifestFor("repo")
        document["annotations"] = {"padding": "x" * (4 * 1024 * 1024)}
        answer = await self.client.put(
            "/v2/repo/manifests/v1", json.dumps(document).encode(), headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertEqual(answer.code, 413)
        self.assertEqual(answer.errorCodes(), ["SIZE_INVALID"])

    async def test_put_with_bad_tag_is_400_tag_invalid(self) -> None:
        _, content = await self.manifestFor("repo")
        answer = await self.client.put(
            "/v2/repo/manifests/-bad", content, headers={"Content-Type": OCI_MANIFEST}
        )
        self.assertError(answer, 400, "TAG_INVALID")

    async def test_fetch_with_bad_tag_is_404_as_distribution(self) -> None:
        await self.client.pushImage("repo", "v1")
        for reference in [".INVALID_MANIFEST_NAME", "t" * 129]:
            self.assertError(
                await self.client.get(f"/v2/repo/manifests/{reference}"), 404, "MANIFEST_UNKNOWN"
            )
            self.assertEqual((await self.client.head(f"/v2/repo/manifests/{reference}")).code, 404)

    async def test_bad_digest_reference_is_400_digest_invalid(self) -> None:
        self.assertError(await self.client.get("/v2/repo/manifests/sha256:short"), 400, "DIGEST_INVALID")

    async def test_unknown_manifest_is_404(self) -> None:
        await self.client.pushImage("repo", "v1")
        self.assertError(await self.client.get("/v2/repo/manifests/v2"), 404, "MANIFEST_UNKNOWN")
        self.assertError(
            await self.client.get(f"/v2/repo/manifests/{digestOf(b'x')}"), 404, "MANIFEST_UNKNOWN"
        )
        head = await self.client.head("/v2/repo/manifests/v2")
        self.assertEqual((head.code, head.body), (404, b""))

    async def test_unknown_repository_is_404(self) -> None:
        answer = await self.client.get("/v2/nobody/manifests/latest")
        self.assertEqual(answer.code, 404)
        self.assertIn(answer.errorCodes()[0], {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"})

    async def test_if_none_match_gives_304(self) -> None:
        digest = await self.client.pushImage("repo", "v1")
        answer = await self.client.get("/v2/repo/manifests/v1", headers={"If-None-Match": f'"{digest}"'})
        self.assertEqual((answer.code, answer.body), (304, b""))

    async def test_delete_by_tag_removes_only_the_tag(self) -> None:
        digest = await self.client.pushImage("repo", "v1")
        answer = await self.client.delete("/v2/repo/manifests/v1")
        self.assertEqual(answer.code, 202)
        self.assertError(await self.client.get("/v2/repo/manifests/v1"), 404, "MANIFEST_UNKNOWN")
        self.assertEqual((await self.client.get(f"/v2/repo/manifests/{digest}")).code, 200)

    async def test_delete_by_digest_removes_manifest_and_tags(self) -> None:
        digest = await self.client.pushImage("repo", "v1")
        answer = await self.client.delete(f"/v2/repo/manifests/{digest}")
        self.assertEqual(answer.code, 202)
        self.assertError(await self.client.get(f"/v2/repo/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")
        self.assertError(await self.client.get("/v2/repo/manifests/v1"), 404, "MANIFEST_UNKNOWN")

    async def test_delete_unknown_is_404(self) -> None:
        await self.client.pushImage("repo", "v1")
        self.assertError(
            await self.client.delete(f"/v2/repo/manifests/{digestOf(b'x')}"), 404, "MANIFEST_UNKNOWN"
        )

    async def test_image_index(self) -> None:
        child = await self.client.pushImage("repo", "amd64")
        content = (await self.client.get(f"/v2/repo/manifests/{child}")).body
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child,
                    "size": len(content),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
        answer = await self.client.put(
            "/v2/repo/manifests/multi", json.dumps(index).encode(), headers={"Content-Type": OCI_INDEX}
        )
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(
            (await self.client.get("/v2/repo/manifests/multi")).header("Content-Type"), OCI_INDEX
        )


class DeleteDisabledTests(APITestCase):
    apiOptions = {"deleteEnabled": False}

    async def test_delete_manifest_is_405_unsupported(self) -> None:
        digest = await self.client.pushImage("repo", "v1")
        self.assertError(await self.client.delete(f"/v2/repo/manifests/{digest}"), 405, "UNSUPPORTED")
        self.assertError(await self.client.delete("/v2/repo/manifests/v1"), 405, "UNSUPPORTED")
        self.assertEqual((await self.client.get("/v2/repo/manifests/v1")).code, 200)
