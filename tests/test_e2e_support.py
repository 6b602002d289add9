"""
The end-to-end helpers' own checks must be able to fail: a comparison that always passes would make
every end-to-end test pass too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from twisted.trial.unittest import SkipTest, TestCase

from tests.support import tools
from tests.support.layouts import REF_NAME, OCILayout, digestOfFile, reachableBlobs, taggedDescriptor
from tests.support.processes import writeConfig
from tests.support.skopeo import compareLayouts
from tests.test_e2e_distribution_layout import layoutProblems


class LayoutBuilderTests(TestCase):
    """OCILayout writes valid layouts; compareLayouts notices every kind of difference."""

    def setUp(self) -> None:
        self.path = Path(self.mktemp()).resolve()
        self.layout = OCILayout(self.path, seed=3)
        self.image = self.layout.addImage([1000, 2000], tag="v1")
        self.platforms = [
            self.layout.addImage([500], architecture=arch, tagged=False) for arch in ("amd64", "arm64")
        ]
        self.index = self.layout.addIndex(self.platforms, tag="multi")

    def copyLayout(self) -> Path:
        copy = Path(self.mktemp()).resolve()
        shutil.copytree(self.path, copy)
        return copy

    def test_blobs_are_named_by_their_digest(self) -> None:
        """Every blob in the layout hashes to its file name."""
        for blob in (self.path / "blobs" / "sha256").iterdir():
            self.assertEqual(digestOfFile(blob), "sha256:" + blob.name)

    def test_index_json_tags(self) -> None:
        """index.json names both tags; the index reaches both platform images."""
        self.assertEqual(taggedDescriptor(self.path, "v1")["digest"], self.image.manifest.digest)
        self.assertEqual(taggedDescriptor(self.path, "multi")["digest"], self.index.digest)
        expected = {self.index.digest} | self.platforms[0].blobDigests() | self.platforms[1].blobDigests()
        self.assertEqual(reachableBlobs(self.path, self.index.digest), expected)
        self.assertRaises(KeyError, taggedDescriptor, self.path, "absent")

    def test_identical_copy_has_no_problems(self) -> None:
        """A byte-for-byte copy compares equal."""
        self.assertEqual(compareLayouts(self.path, "v1", self.copyLayout(), "v1"), [])

    def test_changed_layer_bytes_are_reported(self) -> None:
        """A layer whose bytes changed (same name) is reported."""
        copy = self.copyLayout()
        layer = copy / "blobs" / "sha256" / self.image.layers[1].digest.split(":", 1)[1]
        data = bytearray(layer.read_bytes())
        data[-1] ^= 0xFF
        layer.write_bytes(bytes(data))
        problems = compareLayouts(self.path, "v1", copy, "v1")
        self.assertEqual(problems, [f"blob {self.image.layers[1].digest} differs"])

    def test_missing_blob_is_reported(self) -> None:
        """A child manifest missing from a copied index is reported."""
        copy = self.copyLayout()
        (copy / "blobs" / "sha256" / self.platforms[1].manifest.digest.split(":", 1)[1]).unlink()
        self.assertNotEqual(compareLayouts(self.path, "multi", copy, "multi"), [])

    def test_other_top_level_digest_is_reported(self) -> None:
        """A tag pointing at another manifest is reported."""
        copy = self.copyLayout()
        index = json.loads((copy / "index.json").read_bytes())
        for entry in index["manifests"]:
            if entry["annotations"][REF_NAME] == "v1":
                entry["digest"] = self.platforms[0].manifest.digest
        (copy / "index.json").write_text(json.dumps(index))
        self.assertNotEqual(compareLayouts(self.path, "v1", copy, "v1"), [])


class LayoutProblemsTests(TestCase):
    """layoutProblems recognises distribution's layout and its departures."""

    def setUp(self) -> None:
        self.root = Path(self.mktemp()).resolve()
        source = OCILayout(Path(self.mktemp()).resolve(), seed=5)
        self.image = source.addImage([100, 200], tag="v1")
        base = self.root / "docker" / "registry" / "v2"
        for digest in self.image.blobDigests():
            hexadecimal = digest.split(":", 1)[1]
            data = base / "blobs" / "sha256" / hexadecimal[:2] / hexadecimal / "data"
            data.parent.mkdir(parents=True)
            shutil.copy(source.blobPath(digest), data)
        repository = base / "repositories" / "e2e" / "app"
        links = [f"_manifests/revisions/sha256/{self.image.manifest.digest[7:]}/link"]
        links += [
            f"_layers/sha256/{blob.digest[7:]}/link" for blob in [self.image.config, *self.image.layers]
        ]
        for relative in links:
            path = repository / relative
            path.parent.mkdir(parents=True)
            path.write_bytes(f"sha256:{path.parent.name}".encode())
        tag = repository / "_manifests" / "tags" / "v1"
        for relative in ["current/link", f"index/sha256/{self.image.manifest.digest[7:]}/link"]:
            (tag / relative).parent.mkdir(parents=True)
            (tag / relative).write_bytes(self.image.manifest.digest.encode())
        self.currentLink = tag / "current" / "link"

    def problems(self) -> list[str]:
        return layoutProblems(self.root, "e2e/app", "v1", self.image.manifest.digest, [self.image])

    def test_distribution_layout_passes(self) -> None:
        """A hand-built layout as distribution writes it has no problems."""
        self.assertEqual(self.problems(), [])

    def test_trailing_newline_in_link_is_reported(self) -> None:
        """A link file with a newline after the digest is reported."""
        self.currentLink.write_bytes(self.image.manifest.digest.encode() + b"\n")
        self.assertEqual(len(self.problems()), 1)

    def test_manifest_linked_as_layer_is_reported(self) -> None:
        """A manifest linked under _layers is reported."""
        link = (
            self.root
            / f"docker/registry/v2/repositories/e2e/app/_layers/sha256/{self.image.manifest.digest[7:]}"
        )
        link.mkdir(parents=True)
        self.assertEqual(len(self.problems()), 1)


class ToolTests(TestCase):
    """A missing tool skips, except under CI where it fails."""

    def test_missing_tool_skips_outside_ci(self) -> None:
        self.patch(tools.os, "environ", {"PATH": "/nonexistent"})
        self.assertRaises(SkipTest, tools.requireTool, "no-such-program-registryd")

    def test_missing_tool_fails_in_ci(self) -> None:
        self.patch(tools.os, "environ", {"PATH": "/nonexistent", "CI": "true"})
        self.assertRaises(tools.ToolMissing, tools.requireTool, "no-such-program-registryd")

    def test_config_is_distribution_shaped(self) -> None:
        """The config the harness writes uses distribution's keys."""
        import yaml

        directory = Path(self.mktemp())
        config = yaml.safe_load(writeConfig(directory, Path("/srv/root"), 5123).read_text())
        self.assertEqual(config["storage"]["filesystem"]["rootdirectory"], "/srv/root")
        self.assertEqual(config["storage"]["delete"], {"enabled": True})
        self.assertEqual(config["http"]["addr"], "127.0.0.1:5123")
