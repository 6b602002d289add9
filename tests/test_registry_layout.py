"""
The registry core on the filesystem driver: the exact files distribution would have
written, and content laid out by distribution read back.
"""

from __future__ import annotations

import hashlib
import os

from twisted.trial.unittest import TestCase

from registryd.registry import uploads
from registryd.registry.core import Registry
from registryd.registry.errors import DigestInvalid
from registryd.storage.filesystem import FilesystemDriver
from tests.test_registry_helpers import OCI_MANIFEST, ListBody, pushImage, sha256


def hexOf(digest: str) -> str:
    return digest.split(":", 1)[1]


class FilesystemLayoutTests(TestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.driver = FilesystemDriver(self.root)
        self.addCleanup(self.driver.stop)
        self.registry = Registry(self.driver, deleteEnabled=True)
        self.addCleanup(uploads._states.clear)

    def files(self) -> dict[str, bytes]:
        """Every file under the root, by path relative to it, with its content."""
        found = {}
        for directory, _, names in os.walk(self.root):
            for name in names:
                full = os.path.join(directory, name)
                with open(full, "rb") as f:
                    found[os.path.relpath(full, self.root)] = f.read()
        return found

    async def test_push_writes_exactly_distributions_files(self) -> None:
        repository = self.registry.repository("library/app")
        manifest, content = await pushImage(repository, "v1")
        config = b'{"architecture":"amd64","os":"linux","seed":""}'
        blobs = [config, b"layer one ", b"layer two "]
        v2 = "docker/registry/v2"
        repo = f"{v2}/repositories/library/app"
        expected = {}
        for blob in [*blobs, content]:
            h = hexOf(sha256(blob))
            expected[f"{v2}/blobs/sha256/{h[:2]}/{h}/data"] = blob
        for blob in blobs:
            expected[f"{repo}/_layers/sha256/{hexOf(sha256(blob))}/link"] = sha256(blob).encode()
        m = hexOf(manifest.digest)
        expected[f"{repo}/_manifests/revisions/sha256/{m}/link"] = manifest.digest.encode()
        expected[f"{repo}/_manifests/tags/v1/current/link"] = manifest.digest.encode()
        expected[f"{repo}/_manifests/tags/v1/index/sha256/{m}/link"] = manifest.digest.encode()
        self.assertEqual(self.files(), expected)

    async def test_upload_in_progress_and_across_a_restart(self) -> None:
        repository = self.registry.repository("app")
        upload = await repository.blobs.createUpload()
        await upload.write(ListBody([b"a" * 300_000]))
        uploadDir = f"docker/registry/v2/repositories/app/_uploads/{upload.uuid}"
        files = self.files()
        self.assertEqual(sorted(files), [f"{uploadDir}/data", f"{uploadDir}/startedat"])
        self.assertEqual(files[f"{uploadDir}/data"], b"a" * 300_000)
        # Restart: the stored bytes are read back and hashed before the next chunk.
        uploads.forgetRunningHashes()
        resumed = await Registry(self.driver).repository("app").blobs.resumeUpload(upload.uuid)
        await resumed.write(ListBody([b"b" * 1000]), start=300_000)
        running = uploads._states[upload.uuid].running
        self.assertEqual(running.offset, 301_000)
        whole = b"a" * 300_000 + b"b" * 1000
        self.assertEqual(running.hasher.hexdigest(), hashlib.sha256(whole).hexdigest())
        await resumed.commit(sha256(whole))
        self.assertNotIn(upload.uuid, uploads._states)
        self.assertFalse(any("_uploads/" in path for path in self.files()))

    async def test_wrong_digest_leaves_no_file(self) -> None:
        upload = await self.registry.repository("app").blobs.createUpload()
        await upload.write(ListBody([b"content"]))
        await self.assertFailure(upload.commit(sha256(b"wrong")), DigestInvalid)
        self.assertEqual(self.files(), {})

    async def test_content_laid_out_by_distribution_is_served(self) -> None:
        """Files written as distribution writes them (its hashstates included) are read back."""
        v2 = os.path.join(self.root, "docker", "registry", "v2")

        def put(relative: str, data: bytes) -> None:
            full = os.path.join(v2, relative)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)

        config, layer = b'{"os":"linux"}', b"distribution layer"
        content = (
            b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","config":{"mediaType":'
            b'"application/vnd.oci.image.config.v1+json","digest":"'
            + sha256(config).encode()
            + b'","size":'
            + str(len(config)).encode()
            + b'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"'
            + sha256(layer).encode()
            + b'","size":'
            + str(len(layer)).encode()
            + b"}]}"
        )
        for blob in [config, layer, content]:
            h = hexOf(sha256(blob))
            put(f"blobs/sha256/{h[:2]}/{h}/data", blob)
        for blob in [config, layer]:
            put(f"repositories/old/app/_layers/sha256/{hexOf(sha256(blob))}/link", sha256(blob).encode())
        digest = sha256(content)
        put(f"repositories/old/app/_manifests/revisions/sha256/{hexOf(digest)}/link", digest.encode())
        put(f"repositories/old/app/_manifests/tags/latest/index/sha256/{hexOf(digest)}/link", digest.encode())
        put("repositories/old/app/_manifests/tags/latest/current/link", digest.encode())
        uploadID = "6c3d2b1a-0f9e-4d8c-b7a6-5e4f3d2c1b0a"
        put(f"repositories/old/app/_uploads/{uploadID}/startedat", b"2024-05-01T10:20:30Z")
        put(f"repositories/old/app/_uploads/{uploadID}/data", b"partial ")
        put(f"repositories/old/app/_uploads/{uploadID}/hashstates/sha256/8", b"\x00go-hash-state")

        repository = self.registry.repository("old/app")
        self.assertEqual(await self.registry.catalog(), (["old/app"], False))
        self.assertEqual(await repository.tags(), (["latest"], False))
        manifest = await repository.manifests.get("latest")
        self.assertEqual(
            (manifest.digest, manifest.content, manifest.mediaType), (digest, content, OCI_MANIFEST)
        )
        descriptor, reader = await repository.blobs.open(sha256(layer))
        self.assertEqual(descriptor.size, len(layer))
        self.assertEqual(await reader.read(), layer)
        await reader.close()
        upload = await repository.blobs.resumeUpload(uploadID)
        self.assertEqual((upload.size, upload.startedAt.isoformat()), (8, "2024-05-01T10:20:30+00:00"))
        await upload.write(ListBody([b"upload"]), start=8)
        await upload.commit(sha256(b"partial upload"))
        self.assertEqual((await repository.blobs.stat(sha256(b"partial upload"))).size, 14)
