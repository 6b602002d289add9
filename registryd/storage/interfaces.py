"""
The storage driver seam: what the registry core asks of a place that holds bytes.

Modelled on distribution's StorageDriver. Paths are absolute, '/'-separated, made of
components matching ``[A-Za-z0-9._-]+`` (see L{registryd.storage.paths}); a driver knows
nothing of blobs or manifests. Every method returns a L{Deferred}; failures are the typed
errors below, each carrying the driver's name.

Writers are shaped so that an object store's multipart upload fits: bytes go out in
parts as they arrive (no whole-blob buffering), C{close()} leaves a resumable upload
behind, C{writer(path, append=True)} picks it up again, and C{commit()} makes it whole.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface


class StorageDriverError(Exception):
    """
    Base of every error a storage driver raises.

    @ivar driverName: the name of the driver that raised it.
    @ivar path: the storage path involved, if any.
    """

    def __init__(self, driverName: str, path: str | None = None, detail: str = "") -> None:
        self.driverName = driverName
        self.path = path
        self.detail = detail
        super().__init__(driverName, path, detail)

    def __str__(self) -> str:
        what = f"{self.driverName}: {type(self).__name__}"
        if self.path is not None:
            what += f": {self.path}"
        if self.detail:
            what += f": {self.detail}"
        return what


class PathNotFound(StorageDriverError):
    """Nothing is stored at the path."""


class InvalidPath(StorageDriverError):
    """The path is not a valid storage path (relative, '..', bad characters, escapes the root)."""


class InvalidOffset(StorageDriverError):
    """A read or resumed write was asked to start at an offset the content does not have."""


class UnsupportedMethod(StorageDriverError):
    """The driver does not offer this operation (for example redirects)."""


class IFileInfo(Interface):
    """What L{IStorageDriver.stat} tells about a path."""

    path = Attribute("the path stat was called with")
    size = Attribute("content length in bytes (0 for a directory)")
    modTime = Attribute("last modification, seconds since the epoch (float)")
    isDir = Attribute("True when the path is a directory (a prefix of other paths)")


class IFileReader(Interface):
    """A stream of stored bytes, pulled one chunk at a time."""

    def read() -> object:
        """
        @return: Deferred firing with the next chunk of bytes (any size the driver finds
            efficient, ideally 64 KiB - 4 MiB), or C{b""} once the end is reached.
        """

    def close() -> object:
        """Release the stream (file handle, HTTP response). @return: Deferred firing None."""


class IFileWriter(Interface):
    """
    A write in progress to one path. Whether partial content shows at the path before
    C{commit()} is the driver's business (the filesystem appends in place as distribution
    does; object stores show nothing until the multipart upload completes): the core only
    writes to upload paths and moves committed content into place, so no half-written
    blob is ever visible.
    """

    size = Attribute("bytes accepted so far, counting any content present when opened with append")

    def write(data: bytes) -> object:
        """
        Append C{data}. The caller waits for the Deferred before writing more: that is the
        back-pressure an object store's part upload needs.

        @return: Deferred firing None once the data is accepted.
        """

    def close() -> object:
        """
        Stop writing without committing; what was written so far is kept, so a later
        C{writer(path, append=True)} resumes at C{size}. @return: Deferred firing None.
        """

    def cancel() -> object:
        """Discard everything written to this path. @return: Deferred firing None."""

    def commit() -> object:
        """
        Make the written content visible at the path (complete the multipart upload,
        flush and fsync...). The writer cannot be used afterwards.
        @return: Deferred firing None.
        """


class IStorageDriver(Interface):
    """A place that holds bytes at paths."""

    name = Attribute("the name the configuration uses for this driver, e.g. 'filesystem'")

    def getContent(path: str) -> object:
        """@return: Deferred firing with the whole content (for small objects). PathNotFound."""

    def putContent(path: str, data: bytes) -> object:
        """Store small content at path atomically, replacing any. @return: Deferred firing None."""

    def reader(path: str, offset: int = 0) -> object:
        """
        @return: Deferred firing with an L{IFileReader} of the content from C{offset}.
            PathNotFound; InvalidOffset when offset is negative or beyond the size
            (offset == size gives an empty stream).
        """

    def writer(path: str, append: bool = False) -> object:
        """
        @return: Deferred firing with an L{IFileWriter}. With C{append}, resume the
            uncommitted content a previous writer left by C{close()} (PathNotFound if none);
            without, start empty, discarding anything uncommitted.
        """

    def stat(path: str) -> object:
        """@return: Deferred firing with an L{IFileInfo}. PathNotFound."""

    def list(path: str) -> object:
        """
        @return: Deferred firing with the sorted full paths of the direct children of a
            directory path. PathNotFound when the directory does not exist ("/" always does).
        """

    def move(sourcePath: str, destPath: str) -> object:
        """
        Move content, replacing whatever is at destPath; atomic where the backend allows.
        @return: Deferred firing None. PathNotFound when the source is missing.
        """

    def delete(path: str) -> object:
        """Delete a file or a directory recursively. @return: Deferred firing None. PathNotFound."""

    def redirectURL(method: str, path: str) -> object:
        """
        @return: Deferred firing with a URL a client can fetch the content from directly,
            or None when the driver serves bytes itself.
        """

    def walk(path: str, visit: object) -> object:
        """
        Call C{visit(fileInfo)} for every file and directory below path, depth first in
        lexical order. If visit returns L{SKIP_DIR} for a directory, its children are not
        visited. visit may return a Deferred. @return: Deferred firing None. PathNotFound.
        """


SKIP_DIR = object()
"""Returned by a walk visitor to skip a directory's children."""


class IStorageDriverFactory(IPlugin):
    """A plugin that makes one kind of storage driver; found with twisted.plugin.getPlugins."""

    name = Attribute("the unique driver name the configuration uses (storage.<name>)")

    def create(reactor: object, parameters: dict) -> IStorageDriver:
        """
        Make a driver from its configuration section (a plain dict; may be empty).

        @raise registryd.config.errors.ConfigError: naming the bad parameter as
            C{storage.<name>.<parameter>}.
        """
