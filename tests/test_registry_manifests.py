"""Manifests, tags, referrers and the catalog of the registry core over the in-memory driver."""

from __future__ import annotations

import hashlib

from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from registryd.registry import layout, uploads
from registryd.registry.core import Registry
from registryd.registry.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
    PaginationNumberInvalid,
    TagInvalid,
    Unsupported,
)
from registryd.registry.interfaces import IManifest, IManifests
from registryd.storage.filesystem import FilesystemDriver
from registryd.storage.inmemory import InMemoryDriver
from tests.test_registry_helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    dumps,
    imageManifest,
    pushBlob,
    pushImage,
    sha256,
)

EMPTY_CONFIG = b"{}"


class ManifestTests(TestCase):
    def setUp(self) -> None:
        self.driver = InMemoryDriver()
        self.registry = Registry(self.driver, deleteEnabled=True)
        self.repository = self.registry.repository("library/app")
        self.manifests = self.repository.manifests
        self.addCleanup(uploads._states.clear)

    async def pushBlobs(self, *blobs: bytes) -> None:
        for blob in blobs:
            await pushBlob(self.repository, blob)

    async def test_oci_manifest_by_tag_is_stored_as_distribution_does(self) -> None:
        verifyObject(IManifests, self.manifests)
        manifest, content = await pushImage(self.repository, "v1")
        verifyObject(IManifest, manifest)
        digest = sha256(content)
        self.assertEqual(
            (manifest.digest, manifest.size, manifest.mediaType), (digest, len(content), OCI_MANIFEST)
        )
        self.assertEqual(await self.driver.getContent(layout.blobDataPath(digest)), content)
        for path in [
            layout.revisionLinkPath("library/app", digest),
            layout.tagIndexLinkPath("library/app", "v1", digest),
            layout.tagCurrentLinkPath("library/app", "v1"),
        ]:
            self.assertEqual(await self.driver.getContent(path), digest.encode())
        # Manifests are never linked as layers.
        self.assertFalse(await layout.exists(self.driver, layout.layerLinkPath("library/app", digest)))
        for reference in ["v1", digest]:
            fetched = await self.manifests.get(reference)
            self.assertEqual(
                (fetched.digest, fetched.content, fetched.mediaType), (digest, content, OCI_MANIFEST)
            )
            self.assertEqual(await self.manifests.stat(reference), fetched)

    async def test_media_type_is_read_back_from_storage(self) -> None:
        """A fresh registry (no cache) over content another registry stored serves the same type."""
        _, content = await pushImage(self.repository, "v1", mediaType=None)
        fetched = await Registry(self.driver).repository("library/app").manifests.get("v1")
        self.assertEqual((fetched.mediaType, fetched.content), (OCI_MANIFEST, content))

    async def test_docker_manifest_and_manifest_list(self) -> None:
        config, layer = b'{"os":"linux"}', b"docker layer"
        await self.pushBlobs(config, layer)
        image = dumps(imageManifest(config, [layer], mediaType=DOCKER_MANIFEST))
        manifest, subject = await self.manifests.put("amd64", DOCKER_MANIFEST, image)
        self.assertEqual((manifest.mediaType, subject), (DOCKER_MANIFEST, None))
        listing = dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_LIST,
                "manifests": [
                    descriptor(DOCKER_MANIFEST, image, platform={"architecture": "amd64", "os": "linux"})
                ],
            }
        )
        stored, _ = await self.manifests.put("latest", DOCKER_LIST, listing)
        self.assertEqual(stored.mediaType, DOCKER_LIST)
        self.assertEqual((await self.manifests.get("latest")).content, listing)

    async def test_oci_index_needs_its_children_in_this_repository(self) -> None:
        child, childContent = await pushImage(self.repository, "child")
        index = dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [descriptor(OCI_MANIFEST, childContent)],
            }
        )
        other = self.registry.repository("other").manifests
        error = await self.assertFailure(other.put("multi", OCI_INDEX, index), ManifestBlobUnknown)
        self.assertEqual(error.detail["digest"], child.digest)
        stored, _ = await self.manifests.put("multi", OCI_INDEX, index)
        self.assertEqual(stored.mediaType, OCI_INDEX)

    async def test_index_without_media_type_is_inferred(self) -> None:
        _, childContent = await pushImage(self.repository, "child")
        index = dumps({"schemaVersion": 2, "manifests": [descriptor(OCI_MANIFEST, childContent)]})
        stored, _ = await self.manifests.put("multi", None, index)
        self.assertEqual(stored.mediaType, OCI_INDEX)
        self.assertEqual(
            (await Registry(self.driver).repository("library/app").manifests.get("multi")).mediaType,
            OCI_INDEX,
        )

    async def test_artifact_with_empty_config_and_no_layers(self) -> None:
        await self.pushBlobs(EMPTY_CONFIG)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": descriptor(EMPTY, EMPTY_CONFIG),
            "layers": [],
        }
        stored, subject = await self.manifests.put("sbom", OCI_MANIFEST, dumps(document))
        self.assertEqual((stored.mediaType, subject), (OCI_MANIFEST, None))
        del document["layers"]
        stored, _ = await self.manifests.put("nolayers", None, dumps(document))
        self.assertEqual(stored.mediaType, OCI_MANIFEST)

    async def test_missing_blobs_are_named(self) -> None:
        config, layer = b"{}", b"absent layer"
        await self.pushBlobs(config)
        content = dumps(imageManifest(config, [layer]))
        error = await self.assertFailure(self.manifests.put("v1", OCI_MANIFEST, content), ManifestBlobUnknown)
        self.assertEqual(error.detail["digest"], sha256(layer))
        missingConfig = dumps(imageManifest(b'{"other":1}', []))
        error = await self.assertFailure(
            self.manifests.put("v1", OCI_MANIFEST, missingConfig), ManifestBlobUnknown
        )
        self.assertEqual(error.detail["digest"], sha256(b'{"other":1}'))
        await self.assertFailure(self.manifests.get("v1"), ManifestUnknown)

    async def test_blobs_of_another_repository_do_not_count(self) -> None:
        config, layer = b"{}", b"layer"
        await pushBlob(self.registry.repository("elsewhere"), config)
        await pushBlob(self.registry.repository("elsewhere"), layer)
        content = dumps(imageManifest(config, [layer]))
        await self.assertFailure(self.manifests.put("v1", OCI_MANIFEST, content), ManifestBlobUnknown)

    async def test_foreign_layers_with_urls_need_not_be_stored(self) -> None:
        config = b"{}"
        await self.pushBlobs(config)
        document = imageManifest(config, [])
        document["layers"] = [descriptor(OCI_MANIFEST, b"windows base", urls=["https://example.com/layer"])]
        await self.manifests.put("win", OCI_MANIFEST, dumps(document))

    async def test_content_type_must_agree_with_the_manifest(self) -> None:
        config = b"{}"
        await self.pushBlobs(config)
        content = dumps(imageManifest(config, []))
        await self.assertFailure(self.manifests.put("v1", OCI_INDEX, content), ManifestInvalid)
        await self.assertFailure(self.manifests.put("v1", DOCKER_MANIFEST, content), ManifestInvalid)
        unlabelled = dumps(imageManifest(config, [], mediaType=None))
        await self.assertFailure(self.manifests.put("v1", OCI_INDEX, unlabelled), ManifestInvalid)
        # Parameters and case of the Content-Type do not matter.
        stored, _ = await self.manifests.put("v1", OCI_MANIFEST.upper() + "; charset=utf-8", content)
        self.assertEqual(stored.mediaType, OCI_MANIFEST)

    async def test_malformed_manifests_are_invalid(self) -> None:
        config = b"{}"
        await self.pushBlobs(config)
        good = imageManifest(config, [])
        bad = [
            b"not json",
            b"[]",
            dumps({**good, "schemaVersion": 3}),
            dumps({**good, "schemaVersion": True}),
            dumps({k: v for k, v in good.items() if k != "schemaVersion"}),
            dumps({**good, "config": {"mediaType": "x", "digest": "sha256:abc", "size": 2}}),
            dumps({**good, "config": {**good["config"], "size": -1}}),
            dumps({**good, "config": {**good["config"], "size": "2"}}),
            dumps({k: v for k, v in good.items() if k != "config"}),
            dumps({**good, "config": {k: v for k, v in good["config"].items() if k != "mediaType"}}),
            dumps({**good, "layers": {}}),
            dumps({**good, "mediaType": 7}),
            dumps({**good, "mediaType": "application/vnd.example.unknown"}),
            dumps({**good, "artifactType": 1}),
            dumps({**good, "subject": {"digest": "nope"}}),
            dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "x"}),
            dumps({"schemaVersion": 2, "mediaType": OCI_INDEX}),
            dumps({"schemaVersion": 2}),
        ]
        for content in bad:
            await self.assertFailure(self.manifests.put("v1", None, content), ManifestInvalid)
        self.assertEqual(await self.repository.tags(), ([], False))

    async def test_schema1_is_refused_as_unsupported(self) -> None:
        schema1 = dumps(
            {"schemaVersion": 1, "name": "library/app", "tag": "v1", "fsLayers": [], "history": []}
        )
        error = await self.assertFailure(
            self.manifests.put("v1", "application/vnd.docker.distribution.manifest.v1+prettyjws", schema1),
            ManifestInvalid,
        )
        self.assertIn("schema 1", error.detail["reason"])

    async def test_too_large(self) -> None:
        await self.assertFailure(
            self.manifests.put("v1", OCI_MANIFEST, b" " * (4 * 1024 * 1024 + 1)), ManifestTooLarge
        )

    async def test_digest_reference_must_match_content(self) -> None:
        config = b"{}"
        await self.pushBlobs(config)
        content = dumps(imageManifest(config, []))
        await self.assertFailure(self.manifests.put(sha256(b"other"), OCI_MANIFEST, content), DigestInvalid)
        stored, _ = await self.manifests.put(sha256(content), OCI_MANIFEST, content)
        self.assertEqual(stored.digest, sha256(content))
        self.assertEqual(await self.repository.tags(), ([], False))
        sha512 = "sha512:" + hashlib.sha512(content).hexdigest()
        stored, _ = await self.manifests.put(sha512, OCI_MANIFEST, content)
        self.assertEqual((await self.manifests.get(sha512)).content, content)

    async def test_bad_references(self) -> None:
        await self.assertFailure(self.manifests.put("-bad", OCI_MANIFEST, b"{}"), TagInvalid)
        await self.assertFailure(self.manifests.get("bad/tag"), TagInvalid)
        await self.assertFailure(self.manifests.get("sha256:short"), DigestInvalid)
        await self.assertFailure(self.manifests.get("absent"), ManifestUnknown)
        await self.assertFailure(self.manifests.get(sha256(b"absent")), ManifestUnknown)

    async def test_retagging_keeps_the_index_of_revisions(self) -> None:
        first, _ = await pushImage(self.repository, "v1", seed=b"1")
        second, _ = await pushImage(self.repository, "v1", seed=b"2")
        self.assertEqual((await self.manifests.get("v1")).digest, second.digest)
        for digest in [first.digest, second.digest]:
            self.assertTrue(
                await layout.exists(self.driver, layout.tagIndexLinkPath("library/app", "v1", digest))
            )

    async def test_subject_is_returned_and_need_not_exist(self) -> None:
        await self.pushBlobs(EMPTY_CONFIG)
        subject = descriptor(OCI_MANIFEST, b"not pushed")
        document = imageManifest(
            EMPTY_CONFIG, [], subject=subject, artifactType="application/vnd.example.sig"
        )
        document["config"] = descriptor(EMPTY, EMPTY_CONFIG)
        _, subjectDigest = await self.manifests.put(sha256(dumps(document)), OCI_MANIFEST, dumps(document))
        self.assertEqual(subjectDigest, sha256(b"not pushed"))

    async def test_delete_by_tag_keeps_the_revision(self) -> None:
        manifest, _ = await pushImage(self.repository, "v1")
        await self.manifests.delete("v1")
        await self.assertFailure(self.manifests.get("v1"), ManifestUnknown)
        self.assertEqual((await self.manifests.get(manifest.digest)).digest, manifest.digest)
        await self.assertFailure(self.manifests.delete("v1"), ManifestUnknown)

    async def test_delete_by_digest_removes_its_tags(self) -> None:
        manifest, content = await pushImage(self.repository, "v1")
        await self.manifests.put("v2", OCI_MANIFEST, content)
        other, _ = await pushImage(self.repository, "other", seed=b"x")
        await self.manifests.delete(manifest.digest)
        for reference in ["v1", "v2", manifest.digest]:
            await self.assertFailure(self.manifests.get(reference), ManifestUnknown)
        self.assertEqual(await self.repository.tags(), (["other"], False))
        self.assertEqual((await self.manifests.get("other")).digest, other.digest)
        await self.assertFailure(self.manifests.delete(manifest.digest), ManifestUnknown)
        # The content stays in the blob store for garbage collection.
        self.assertEqual(await self.driver.getContent(layout.blobDataPath(manifest.digest)), content)

    async def test_delete_needs_deletes_enabled(self) -> None:
        registry = Registry(self.driver)
        manifest, _ = await pushImage(registry.repository("app"), "v1")
        manifests = registry.repository("app").manifests
        await self.assertFailure(manifests.delete("v1"), Unsupported)
        await self.assertFailure(manifests.delete(manifest.digest), Unsupported)
        self.assertEqual((await manifests.get("v1")).digest, manifest.digest)

    async def test_read_only_refuses_puts_but_serves(self) -> None:
        manifest, content = await pushImage(self.repository, "v1")
        self.registry.readOnly = True
        await self.assertFailure(self.manifests.put("v2", OCI_MANIFEST, content), Unsupported)
        await self.assertFailure(self.manifests.delete("v1"), Unsupported)
        self.assertEqual((await self.manifests.get("v1")).digest, manifest.digest)


class ReferrersTests(TestCase):
    def setUp(self) -> None:
        self.driver = InMemoryDriver()
        self.registry = Registry(self.driver)
        self.repository = self.registry.repository("app")
        self.addCleanup(uploads._states.clear)

    async def pushReferrer(
        self, subject: dict, artifactType: str | None, configType: str = EMPTY, **extra
    ) -> str:
        await pushBlob(self.repository, EMPTY_CONFIG)
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if artifactType is not None:
            document["artifactType"] = artifactType
        document["config"] = descriptor(configType, EMPTY_CONFIG)
        document["layers"] = []
        document["subject"] = subject
        document.update(extra)
        content = dumps(document)
        await self.repository.manifests.put(sha256(content), OCI_MANIFEST, content)
        return sha256(content)

    async def test_referrers_with_artifact_type_filter(self) -> None:
        image, content = await pushImage(self.repository, "v1")
        subject = descriptor(OCI_MANIFEST, content)
        signature = await self.pushReferrer(subject, "application/vnd.example.sig", annotations={"k": "v"})
        sbom = await self.pushReferrer(subject, None, configType="application/vnd.example.sbom.config")
        await self.pushReferrer(descriptor(OCI_MANIFEST, b"another subject"), "application/vnd.example.sig")
        found = await self.repository.manifests.referrers(image.digest)
        self.assertEqual(sorted(r["digest"] for r in found), sorted([signature, sbom]))
        byDigest = {r["digest"]: r for r in found}
        self.assertEqual(
            byDigest[signature],
            {
                "mediaType": OCI_MANIFEST,
                "digest": signature,
                "size": len(await self.driver.getContent(layout.blobDataPath(signature))),
                "artifactType": "application/vnd.example.sig",
                "annotations": {"k": "v"},
            },
        )
        # Without artifactType, the config's media type stands in (OCI image spec).
        self.assertEqual(byDigest[sbom]["artifactType"], "application/vnd.example.sbom.config")
        self.assertNotIn("annotations", byDigest[sbom])
        filtered = await self.repository.manifests.referrers(image.digest, "application/vnd.example.sig")
        self.assertEqual([r["digest"] for r in filtered], [signature])
        self.assertEqual(await self.repository.manifests.referrers(image.digest, "application/none"), [])

    async def test_referrers_are_found_by_a_fresh_registry_and_after_deletes(self) -> None:
        image, content = await pushImage(self.repository, "v1")
        signature = await self.pushReferrer(descriptor(OCI_MANIFEST, content), "application/vnd.example.sig")
        fresh = Registry(self.driver, deleteEnabled=True).repository("app").manifests
        self.assertEqual([r["digest"] for r in await fresh.referrers(image.digest)], [signature])
        await fresh.delete(signature)
        self.assertEqual(await fresh.referrers(image.digest), [])
        self.assertEqual(await self.repository.manifests.referrers(image.digest), [])

    async def test_no_referrers(self) -> None:
        self.assertEqual(await self.repository.manifests.referrers(sha256(b"x")), [])
        await self.assertFailure(self.repository.manifests.referrers("sha256:bad"), DigestInvalid)

    async def test_index_referrer_uses_its_own_artifact_type_only(self) -> None:
        image, content = await pushImage(self.repository, "v1")
        index = dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "artifactType": "application/vnd.example.bundle",
                "manifests": [],
                "subject": descriptor(OCI_MANIFEST, content),
            }
        )
        await self.repository.manifests.put(sha256(index), OCI_INDEX, index)
        found = await self.repository.manifests.referrers(image.digest)
        self.assertEqual(
            found,
            [
                {
                    "mediaType": OCI_INDEX,
                    "digest": sha256(index),
                    "size": len(index),
                    "artifactType": "application/vnd.example.bundle",
                }
            ],
        )


class TagsAndCatalogTests(TestCase):
    def setUp(self) -> None:
        self.driver = InMemoryDriver()
        self.registry = Registry(self.driver, deleteEnabled=True)
        self.addCleanup(uploads._states.clear)

    async def test_tags_paging(self) -> None:
        repository = self.registry.repository("app")
        _, content = await pushImage(repository, "b")
        for tag in ["a", "C", "c", "a.1", "z"]:
            await repository.manifests.put(tag, OCI_MANIFEST, content)
        self.assertEqual(await repository.tags(), (["C", "a", "a.1", "b", "c", "z"], False))
        self.assertEqual(await repository.tags(n=2), (["C", "a"], True))
        self.assertEqual(await repository.tags(n=2, last="a"), (["a.1", "b"], True))
        self.assertEqual(await repository.tags(n=2, last="c"), (["z"], False))
        self.assertEqual(await repository.tags(n=1, last="c"), (["z"], False))
        self.assertEqual(await repository.tags(last="z"), ([], False))
        self.assertEqual(await repository.tags(n=0), ([], False))
        await self.assertFailure(repository.tags(n=-1), PaginationNumberInvalid)

    async def test_tags_of_unknown_repository(self) -> None:
        await self.assertFailure(self.registry.repository("nothing").tags(), NameUnknown)

    async def test_tags_of_a_repository_without_tags(self) -> None:
        repository = self.registry.repository("app")
        await pushBlob(repository, b"only a blob")
        self.assertEqual(await repository.tags(), ([], False))

    async def test_catalog_orders_by_path_component(self) -> None:
        names = ["a-b", "a/b", "a", "b/c/d", "a/b/c", "z0", "a.b"]
        for name in names:
            await pushImage(self.registry.repository(name), "latest")
        # Only blobs, or only an upload: not in the catalog.
        await pushBlob(self.registry.repository("blobs/only"), b"x")
        await self.registry.repository("uploading").blobs.createUpload()
        expected = ["a", "a/b", "a/b/c", "a-b", "a.b", "b/c/d", "z0"]
        self.assertEqual(await self.registry.catalog(), (expected, False))
        self.assertEqual(await self.registry.catalog(n=3), (expected[:3], True))
        self.assertEqual(await self.registry.catalog(n=3, last="a/b/c"), (expected[3:6], True))
        self.assertEqual(await self.registry.catalog(n=10, last="a.b"), (expected[5:], False))
        self.assertEqual(await self.registry.catalog(last="z0"), ([], False))
        await self.assertFailure(self.registry.catalog(n=-5), PaginationNumberInvalid)

    async def test_catalog_pages_meet_nested_repositories_in_order(self) -> None:
        # A walk meets "a/0b" before "a/_manifests", and "a/_manifests" before "a/b": pages that
        # stop the walk early must still come out in catalog order, whatever their size.
        names = ["a", "a/0b", "a/0b/1", "a/b", "a1", "b/2", "c"]
        expected = sorted(names, key=lambda name: name.split("/"))
        filesystem = FilesystemDriver(self.mktemp())
        self.addCleanup(filesystem.stop)
        for registry in (self.registry, Registry(filesystem)):
            for name in names:
                await pushImage(registry.repository(name), "latest")
            self.assertEqual(await registry.catalog(), (expected, False))
            for n in (1, 2, 3, len(names) - 1, len(names)):
                listed: list[str] = []
                last = None
                more = True
                while more:
                    page, more = await registry.catalog(n=n, last=last)
                    listed += page
                    last = page[-1] if page else None
                self.assertEqual(listed, expected, f"pages of {n} from {registry.driver.name}")

    async def test_empty_catalog(self) -> None:
        self.assertEqual(await self.registry.catalog(), ([], False))
        self.assertEqual(await self.registry.catalog(n=10, last="a"), ([], False))

    async def test_repository_with_deleted_tags_stays_in_catalog(self) -> None:
        await pushImage(self.registry.repository("app"), "v1")
        await self.registry.repository("app").manifests.delete("v1")
        self.assertEqual(await self.registry.catalog(), (["app"], False))
