"""Tests for the listings: tags (C{/v2/<name>/tags/list}), catalog (C{/v2/_catalog}), referrers."""

from __future__ import annotations

import json

from tests.test_api_base import OCI_MANIFEST, APITestCase, digestOf

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class TagsTests(APITestCase):
    async def tagged(self, *tags: str) -> None:
        digest = await self.client.pushImage("repo", tags[0])
        content = (await self.client.get(f"/v2/repo/manifests/{digest}")).body
        for tag in tags[1:]:
            answer = await self.client.put(
                f"/v2/repo/manifests/{tag}", content, headers={"Content-Type": OCI_MANIFEST}
            )
            self.assertEqual(answer.code, 201)

    async def test_list_is_sorted(self) -> None:
        await self.tagged("b", "a", "C", "c")
        answer = await self.client.get("/v2/repo/tags/list")
        self.assertEqual(answer.code, 200)
        self.assertTrue(answer.header("Content-Type").startswith("application/json"))
        self.assertEqual(answer.json(), {"name": "repo", "tags": ["C", "a", "b", "c"]})
        self.assertIsNone(answer.header("Link"))

    async def test_pagination_with_link(self) -> None:
        await self.tagged("a", "b", "c", "d", "e")
        first = await self.client.get("/v2/repo/tags/list?n=2")
        self.assertEqual(first.json()["tags"], ["a", "b"])
        self.assertEqual(first.header("Link"), '</v2/repo/tags/list?last=b&n=2>; rel="next"')
        second = await self.client.get("/v2/repo/tags/list?last=b&n=2")
        self.assertEqual(second.json()["tags"], ["c", "d"])
        third = await self.client.get("/v2/repo/tags/list?last=d&n=2")
        self.assertEqual(third.json()["tags"], ["e"])
        self.assertIsNone(third.header("Link"))
        self.assertEqual((await self.client.get("/v2/repo/tags/list?last=c")).json()["tags"], ["d", "e"])

    async def test_link_includes_prefix(self) -> None:
        self.api.settings.prefix = "/registry"
        await self.tagged("a", "b")
        answer = await self.client.get("/v2/repo/tags/list?n=1")
        self.assertEqual(answer.header("Link"), '</registry/v2/repo/tags/list?last=a&n=1>; rel="next"')

    async def test_n_zero_is_empty_without_link(self) -> None:
        await self.tagged("a", "b")
        answer = await self.client.get("/v2/repo/tags/list?n=0")
        self.assertEqual(answer.json(), {"name": "repo", "tags": []})
        self.assertIsNone(answer.header("Link"))

    async def test_bad_n_is_400_pagination_number_invalid(self) -> None:
        await self.tagged("a")
        for bad in ["-1", "x", "1.5"]:
            answer = await self.client.get(f"/v2/repo/tags/list?n={bad}")
            self.assertError(answer, 400, "PAGINATION_NUMBER_INVALID")

    async def test_unknown_repository_is_404_name_unknown(self) -> None:
        self.assertError(await self.client.get("/v2/nobody/tags/list"), 404, "NAME_UNKNOWN")

    async def test_repository_with_only_an_upload_is_404_name_unknown(self) -> None:
        """As distribution: an upload in progress does not make a repository known to a tags listing."""
        started = await self.client.post("/v2/uploading/blobs/uploads/")
        self.assertEqual(started.code, 202)
        self.assertError(await self.client.get("/v2/uploading/tags/list"), 404, "NAME_UNKNOWN")

    async def test_repository_whose_tags_were_all_deleted_lists_none(self) -> None:
        """The conformance suite's content management: after deleting every tag, the listing is 200."""
        self.api.registry.deleteEnabled = True
        await self.tagged("only")
        deleted = await self.client.request("DELETE", "/v2/repo/manifests/only")
        self.assertEqual(deleted.code, 202)
        answer = await self.client.get("/v2/repo/tags/list")
        self.assertEqual((answer.code, answer.json()), (200, {"name": "repo", "tags": []}))


class CatalogTests(APITestCase):
    async def test_catalog_lists_repositories(self) -> None:
        for name in ["b", "a/x", "a"]:
            await self.client.pushImage(name, "latest")
        answer = await self.client.get("/v2/_catalog")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.json(), {"repositories": ["a", "a/x", "b"]})
        self.assertIsNone(answer.header("Link"))

    async def test_empty_registry(self) -> None:
        self.assertEqual((await self.client.get("/v2/_catalog")).json(), {"repositories": []})

    async def test_pagination_with_link(self) -> None:
        for name in ["a", "b", "c"]:
            await self.client.pushImage(name, "latest")
        first = await self.client.get("/v2/_catalog?n=2")
        self.assertEqual(first.json(), {"repositories": ["a", "b"]})
        self.assertEqual(first.header("Link"), '</v2/_catalog?last=b&n=2>; rel="next"')
        second = await self.client.get("/v2/_catalog?last=b&n=2")
        self.assertEqual(second.json(), {"repositories": ["c"]})
        self.assertIsNone(second.header("Link"))

    async def test_n_zero_is_empty(self) -> None:
        await self.client.pushImage("a", "latest")
        answer = await self.client.get("/v2/_catalog?n=0")
        self.assertEqual((answer.json(), answer.header("Link")), ({"repositories": []}, None))

    async def test_bad_n_is_400(self) -> None:
        for bad in ["-3", "many"]:
            self.assertError(await self.client.get(f"/v2/_catalog?n={bad}"), 400, "PAGINATION_NUMBER_INVALID")

    async def test_n_over_maxentries_is_400(self) -> None:
        # distribution's catalog.maxentries (1000): larger requests are refused.
        self.assertError(await self.client.get("/v2/_catalog?n=1001"), 400, "PAGINATION_NUMBER_INVALID")
        self.assertEqual((await self.client.get("/v2/_catalog?n=1000")).code, 200)


class ReferrersTests(APITestCase):
    async def referrer(self, subject: str, subjectSize: int, artifactType: str | None, tag: str) -> str:
        config = b"{}"
        configDigest = await self.client.pushBlob("repo", config)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.example.config", "digest": configDigest, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subjectSize},
            "annotations": {"org.example": tag},
        }
        if artifactType:
            document["artifactType"] = artifactType
        digest, _ = await self.client.pushManifest("repo", tag, document, OCI_MANIFEST)
        return digest

    async def test_referrers_index(self) -> None:
        subject = await self.client.pushImage("repo", "v1")
        size = len((await self.client.get(f"/v2/repo/manifests/{subject}")).body)
        sbom = await self.referrer(subject, size, "application/vnd.example.sbom", "sbom")
        sig = await self.referrer(subject, size, "application/vnd.example.sig", "sig")
        answer = await self.client.get(f"/v2/repo/referrers/{subject}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("Content-Type"), OCI_INDEX)
        index = answer.json()
        self.assertEqual((index["schemaVersion"], index["mediaType"]), (2, OCI_INDEX))
        self.assertEqual({d["digest"] for d in index["manifests"]}, {sbom, sig})
        self.assertIsNone(answer.header("OCI-Filters-Applied"))

        filtered = await self.client.get(
            f"/v2/repo/referrers/{subject}?artifactType=application/vnd.example.sbom"
        )
        self.assertEqual(filtered.header("OCI-Filters-Applied"), "artifactType")
        self.assertEqual([d["digest"] for d in filtered.json()["manifests"]], [sbom])
        self.assertEqual(filtered.json()["manifests"][0]["artifactType"], "application/vnd.example.sbom")

    async def test_no_referrers_is_empty_index(self) -> None:
        subject = await self.client.pushImage("repo", "v1")
        answer = await self.client.get(f"/v2/repo/referrers/{subject}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.json(), {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    async def test_unknown_repository_is_empty_index_not_404(self) -> None:
        answer = await self.client.get(f"/v2/nobody/referrers/{digestOf(b'x')}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(json.loads(answer.body)["manifests"], [])

    async def test_bad_digest_is_400(self) -> None:
        self.assertError(await self.client.get("/v2/repo/referrers/sha256:nope"), 400, "DIGEST_INVALID")
        self.assertError(await self.client.get("/v2/repo/referrers/latest"), 400, "DIGEST_INVALID")
