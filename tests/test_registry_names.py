"""The spec's grammars for repository names, tags and digests, and the storage layout paths."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from registryd.registry import layout
from registryd.registry.errors import DigestInvalid, NameInvalid, TagInvalid
from registryd.registry.names import (
    checkName,
    checkTag,
    digestOf,
    isDigest,
    isUploadID,
    newHasher,
    parseDigest,
)

HEX64 = "a" * 64
HEX128 = "b" * 128


class RepositoryNameTests(SynchronousTestCase):
    def test_valid_names_are_accepted(self) -> None:
        for name in ["a", "library/ubuntu", "a0/b-c/d__e/f.g", "my-app", "a--b", "x/y/z/w", "a" * 255]:
            self.assertEqual(checkName(name), name)

    def test_invalid_names_are_refused(self) -> None:
        for name in [
            "",
            "A",
            "Library/ubuntu",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "..",
            "a/.b",
            "_a",
            "a/_uploads",
            "a___b",
            "a.-b",
            "a b",
            "a" * 256,
            "a/" * 127 + "bb",
        ]:
            self.assertRaises(NameInvalid, checkName, name)


class TagTests(SynchronousTestCase):
    def test_valid_tags_are_accepted(self) -> None:
        for tag in ["latest", "v1.0.0", "_x", "A-b_c.d", "a" * 128]:
            self.assertEqual(checkTag(tag), tag)

    def test_invalid_tags_are_refused(self) -> None:
        for tag in ["", ".x", "-x", "a" * 129, "a:b", "a/b", "ä"]:
            self.assertRaises(TagInvalid, checkTag, tag)


class DigestTests(SynchronousTestCase):
    def test_sha256_and_sha512_parse(self) -> None:
        self.assertEqual(parseDigest(f"sha256:{HEX64}"), ("sha256", HEX64))
        self.assertEqual(parseDigest(f"sha512:{HEX128}"), ("sha512", HEX128))

    def test_malformed_and_unsupported_digests_are_invalid(self) -> None:
        for text in [
            "sha256",
            f"sha256:{HEX64[:-1]}",
            f"sha256:{HEX64}0",
            f"sha256:{HEX64.upper()}",
            f"sha512:{HEX64}",
            f"md5:{'c' * 32}",
            f"sha256+b64:{HEX64}",
            f"SHA256:{HEX64}",
            f":{HEX64}",
            f"sha256:../{HEX64}",
        ]:
            self.assertRaises(DigestInvalid, parseDigest, text)

    def test_unsupported_algorithm_is_named(self) -> None:
        error = self.assertRaises(DigestInvalid, parseDigest, f"blake3:{HEX64}")
        self.assertIn("unsupported", error.detail["reason"])

    def test_references_with_colons_are_digests(self) -> None:
        self.assertTrue(isDigest(f"sha256:{HEX64}"))
        self.assertFalse(isDigest("latest"))

    def test_hashers_and_digests(self) -> None:
        self.assertEqual(
            digestOf(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )
        self.assertEqual(newHasher("sha512").name, "sha512")
        self.assertRaises(ValueError, newHasher, "md5")

    def test_upload_ids_are_lowercase_uuids(self) -> None:
        self.assertTrue(isUploadID("0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"))
        for text in ["../x", "0F1E2D3C-4B5A-4978-8A6B-5C4D3E2F1A0B", "0f1e2d3c4b5a49788a6b5c4d3e2f1a0b", ""]:
            self.assertFalse(isUploadID(text))


class LayoutTests(SynchronousTestCase):
    def test_paths_are_distributions(self) -> None:
        digest = f"sha256:{HEX64}"
        root = "/docker/registry/v2"
        self.assertEqual(layout.blobDataPath(digest), f"{root}/blobs/sha256/aa/{HEX64}/data")
        self.assertEqual(
            layout.layerLinkPath("a/b", digest), f"{root}/repositories/a/b/_layers/sha256/{HEX64}/link"
        )
        self.assertEqual(
            layout.revisionLinkPath("a", digest),
            f"{root}/repositories/a/_manifests/revisions/sha256/{HEX64}/link",
        )
        self.assertEqual(
            layout.tagCurrentLinkPath("a", "v1"), f"{root}/repositories/a/_manifests/tags/v1/current/link"
        )
        self.assertEqual(
            layout.tagIndexLinkPath("a", "v1", digest),
            f"{root}/repositories/a/_manifests/tags/v1/index/sha256/{HEX64}/link",
        )
        self.assertEqual(layout.uploadDataPath("a", "u"), f"{root}/repositories/a/_uploads/u/data")
        self.assertEqual(layout.uploadStartedAtPath("a", "u"), f"{root}/repositories/a/_uploads/u/startedat")
        self.assertEqual(layout.linkContent(digest), digest.encode())
