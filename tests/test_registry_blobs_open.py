"""Opening a blob with the descriptor a stat just returned: no second lookup of the blob."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from registryd.registry.core import Registry
from registryd.registry.descriptors import Descriptor
from registryd.registry.errors import RangeInvalid
from registryd.storage.inmemory import InMemoryDriver
from registryd.testing.driversuite import readToEnd
from tests.test_registry_helpers import pushBlob, sha256


class CountingDriver(InMemoryDriver):
    """The in-memory driver, counting the link reads and stats the core makes."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def getContent(self, path: str) -> Any:
        self.lookups += 1
        return super().getContent(path)

    def stat(self, path: str) -> Any:
        self.lookups += 1
        return super().stat(path)


class OpenWithDescriptorTests(TestCase):
    def setUp(self) -> None:
        self.driver = CountingDriver()
        self.repository = Registry(self.driver).repository("library/app")

    async def test_open_with_the_stat_descriptor_looks_nothing_up_again(self) -> None:
        digest = await pushBlob(self.repository, b"0123456789")
        descriptor = await self.repository.blobs.stat(digest)
        self.driver.lookups = 0
        opened, reader = await self.repository.blobs.open(digest, 3, descriptor)
        self.assertEqual(self.driver.lookups, 0)
        self.assertEqual(opened, descriptor)
        self.assertEqual(await readToEnd(reader), b"3456789")

    async def test_open_without_descriptor_looks_the_blob_up(self) -> None:
        digest = await pushBlob(self.repository, b"0123456789")
        self.driver.lookups = 0
        _, reader = await self.repository.blobs.open(digest, 0)
        await reader.close()
        self.assertGreater(self.driver.lookups, 0)

    async def test_descriptor_of_another_digest_is_not_trusted(self) -> None:
        digest = await pushBlob(self.repository, b"0123456789")
        other = Descriptor(sha256(b"other"), 1000)
        self.driver.lookups = 0
        opened, reader = await self.repository.blobs.open(digest, 0, other)
        await reader.close()
        self.assertGreater(self.driver.lookups, 0)
        self.assertEqual(opened.digest, digest)
        self.assertEqual(opened.size, 10)

    async def test_offset_beyond_the_descriptor_size_is_range_invalid(self) -> None:
        digest = await pushBlob(self.repository, b"0123456789")
        descriptor = await self.repository.blobs.stat(digest)
        await self.assertFailure(self.repository.blobs.open(digest, 11, descriptor), RangeInvalid)
