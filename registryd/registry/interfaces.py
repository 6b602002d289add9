"""
The registry core as the API layer sees it: repositories, blobs, uploads, manifests,
tags, referrers and the catalog, over an L{IStorageDriver} in distribution's layout.

The core knows nothing of HTTP. Every method that touches storage returns a Deferred
(or is a coroutine: the API awaits either). Failures are the typed errors of
L{registryd.registry.errors}. Names, tags and digests are validated here by the
spec's grammars (L{registryd.registry.names}); the API passes them through as text.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IDescriptor(Interface):
    """What is known of a blob or manifest by digest (a plain attrs/dataclass)."""

    digest = Attribute("'<alg>:<hex>' text")
    size = Attribute("length in bytes")
    mediaType = Attribute("media type text, or None when unknown (plain blobs)")


class IManifest(IDescriptor):
    """A stored manifest: the exact bytes as pushed."""

    content = Attribute("the manifest bytes, byte-for-byte as pushed")


class IBodyStream(Interface):
    """
    A request body arriving from the network (see L{registryd.web.request}).
    Also what L{IUpload.write} consumes.
    """

    def read() -> object:
        """@return: Deferred firing with the next chunk of bytes, or b"" at the end."""


class IUpload(Interface):
    """An upload session: state lives in storage (`_uploads/<uuid>/`), so it survives restarts."""

    repository = Attribute("repository name")
    uuid = Attribute("the upload's id (a UUID4 text)")
    size = Attribute("bytes received so far (the next expected offset)")
    startedAt = Attribute("when the upload started, an aware datetime")

    def write(
        body: IBodyStream, start: int | None = None, length: int | None = None, resumable: bool = False
    ) -> object:
        """
        Append the body's bytes to the upload, hashing as they arrive; never holds the
        whole body. With C{start} (from Content-Range), it must equal C{size}, else
        L{RangeInvalid} before anything is read. C{length} (Content-Length), when given,
        must match what arrived, else L{SizeInvalid}. What was written before a failure
        (short body, client gone) stays in the upload, never visible as a blob: C{size}
        then tells the client where to resume (GET status / 416 Range). With C{resumable}
        (more requests will follow), the running hash is saved in storage too, so that any
        process can take up the next request without reading the upload back.
        @return: Deferred firing with the new size.
        """

    def commit(digest: str, size: int | None = None) -> object:
        """
        Finish the upload: verify the digest (L{DigestInvalid}: the upload is removed and
        nothing is visible), move the data to the blob store, link the blob into the
        repository, remove the upload. @return: Deferred firing with an L{IDescriptor}.
        """

    def cancel() -> object:
        """Discard the upload. @return: Deferred firing None."""

    def release() -> object:
        """Let go of what a resume kept for a write (see L{IBlobs.resumeUpload}). @return: Deferred."""


class IBlobs(Interface):
    """The blobs linked into one repository."""

    def stat(digest: str) -> object:
        """@return: Deferred firing with an L{IDescriptor}. L{BlobUnknown}, L{DigestInvalid} (grammar)."""

    def open(digest: str, offset: int = 0, descriptor: IDescriptor | None = None) -> object:
        """
        @param descriptor: what L{stat} just gave for digest, if the caller has it: the
            blob is then not looked up a second time.
        @return: Deferred firing with (L{IDescriptor}, L{IFileReader} from offset).
            L{BlobUnknown}, L{RangeInvalid}.
        """

    def redirectURL(method: str, digest: str) -> object:
        """@return: Deferred firing with a URL or None (driver-dependent)."""

    def delete(digest: str) -> object:
        """
        Unlink the blob from the repository (the data stays for GC). L{Unsupported}
        when deletes are disabled, L{BlobUnknown}. @return: Deferred firing None.
        """

    def mount(digest: str, fromRepository: str | None) -> object:
        """
        Link a blob from another repository (or, with C{fromRepository} None, any blob the
        registry already holds) into this one. @return: Deferred firing with an
        L{IDescriptor}; L{BlobUnknown} when it cannot be mounted.
        """

    def createUpload() -> object:
        """@return: Deferred firing with a new L{IUpload}."""

    def resumeUpload(uuid: str, keepWriter: bool = False) -> object:
        """
        @param keepWriter: a write follows at once: keep what was opened to find the upload for
            it (the caller then calls the upload's C{release} when done, written or not).
        @return: Deferred firing with the L{IUpload}. L{BlobUploadUnknown}.
        """


class IManifests(Interface):
    """The manifests of one repository."""

    def get(reference: str) -> object:
        """
        Look up by tag or digest. @return: Deferred firing with an L{IManifest}.
        L{ManifestUnknown}; L{TagInvalid}/L{DigestInvalid} for bad grammar.
        """

    def stat(reference: str) -> object:
        """As get, but may skip reading content where cheap (HEAD); fires with an L{IManifest}."""

    def put(reference: str, mediaType: str | None, content: bytes) -> object:
        """
        Validate and store a manifest (as blob + revision link), and tag it when
        reference is a tag. A digest reference must match the content.
        @return: Deferred firing with (L{IManifest}, subject digest or None).
        L{ManifestInvalid}, L{ManifestBlobUnknown}, L{DigestInvalid}, L{TagInvalid},
        L{ManifestTooLarge}.
        """

    def delete(reference: str) -> object:
        """
        By digest: remove the revision and every tag pointing at it. By tag: remove the
        tag only. L{Unsupported} when deletes are disabled. L{ManifestUnknown}.
        @return: Deferred firing None.
        """

    def referrers(digest: str, artifactType: str | None = None) -> object:
        """
        @return: Deferred firing with the list of descriptor dicts (mediaType, digest,
            size, artifactType, annotations) of manifests whose subject is digest,
            filtered by artifactType when given.
        """


class IRepository(Interface):
    name = Attribute("the repository name")
    blobs = Attribute("L{IBlobs}")
    manifests = Attribute("L{IManifests}")

    def tags(n: int | None = None, last: str | None = None) -> object:
        """
        @return: Deferred firing with (sorted tag names of this page, more: bool).
            L{NameUnknown} when the repository has no tags directory / does not exist.
        """


class IBlobDescriptorCache(Interface):
    """
    What blob stats learned (C{storage.cache.blobdescriptor}): a digest's descriptor, and which
    repositories link it. Failures of a remote cache are logged, never raised.
    """

    def stat(repository: str, digest: str) -> object:
        """@return: Deferred firing with the IDescriptor of digest known linked into repository, or None."""

    def remember(repository: str, digest: str, descriptor: IDescriptor) -> object:
        """Remember digest's descriptor and its link into repository. @return: Deferred firing None."""

    def forgetLink(repository: str, digest: str) -> object:
        """Forget that digest is linked into repository (unlinked). @return: Deferred firing None."""

    def forget(digest: str) -> object:
        """Forget digest's descriptor (its data left the blob store). @return: Deferred firing None."""

    def close() -> object:
        """Release connections. @return: Deferred firing None."""


class IRegistry(Interface):
    """The whole registry over one storage driver."""

    driver = Attribute("the L{IStorageDriver}")
    descriptorCache = Attribute("the L{IBlobDescriptorCache} blob stats consult")
    readOnly = Attribute("True when writes are refused (storage.maintenance.readonly)")
    deleteEnabled = Attribute("storage.delete.enabled")

    def repository(name: str) -> IRepository:
        """@return: the repository (need not exist yet). L{NameInvalid} raised at once."""

    def namespaced(name: str, namespace: str) -> str:
        """
        The repository a mirror client means by name with containerd's C{?ns=<registry host>}
        (a pull-through cache with an upstream for that host prefixes it); otherwise name.
        """

    def catalog(n: int | None = None, last: str | None = None) -> object:
        """
        @return: Deferred firing with (repository names of this page in lexical order
            by path component, more: bool).
        """
