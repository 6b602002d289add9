"""
The seam between the pull-through cache (L{registryd.proxy.store}) and the upstream
registries it mirrors (L{registryd.proxy.upstream}).

An L{IUpstream} is one remote registry speaking the v2 API: it authenticates itself
(anonymous, basic, or the bearer-token challenge flow with tokens cached per scope),
verifies TLS by default, and answers in the registry core's terms: descriptors and
streams, or the typed errors of L{registryd.registry.errors} and L{UpstreamUnavailable}.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class UpstreamUnavailable(Exception):
    """
    The upstream could not be asked: connection refused or reset, TLS failure, timeout,
    a 5xx answer, or an authentication failure on our side (bad configured credentials,
    token endpoint down). The cache then serves what it holds and logs this.
    """


class IUpstreamManifest(Interface):
    """A manifest as the upstream answered it."""

    digest = Attribute("'<alg>:<hex>' text: Docker-Content-Digest, or computed from content")
    mediaType = Attribute("Content-Type as the upstream sent it")
    size = Attribute("length in bytes")
    content = Attribute("the manifest bytes, or None for a HEAD")


class IUpstreamBlob(Interface):
    """An upstream blob response whose body has not been read yet."""

    digest = Attribute("the digest asked for")
    size = Attribute("Content-Length of the whole blob")
    mediaType = Attribute("Content-Type as sent, or None")

    def read() -> object:
        """
        @return: Deferred firing with the next chunk of bytes, b"" at the end. Fails with
        L{UpstreamUnavailable} if the transfer breaks (the caller then discards what it
        wrote). Reading is the back-pressure: the body is not buffered beyond a chunk or two.
        """

    def cancel() -> None:
        """Abandon the transfer and close the connection."""


class IUpstream(Interface):
    """One upstream registry (C{proxy.remoteurl} with its credentials)."""

    url = Attribute("the remote URL, e.g. 'https://registry-1.docker.io'")

    def manifest(name: str, reference: str, method: str = "GET", accept: object = None) -> object:
        """
        C{GET} or C{HEAD} C{/v2/<name>/manifests/<reference>} upstream, sending an Accept
        header listing every manifest type registryd stores (or C{accept} when given).
        @return: Deferred firing with an L{IUpstreamManifest}. L{ManifestUnknown} on 404,
        L{UpstreamUnavailable} when the upstream cannot answer.
        """

    def blob(name: str, digest: str) -> object:
        """
        C{GET} C{/v2/<name>/blobs/<digest>} upstream, following redirects.
        @return: Deferred firing with an L{IUpstreamBlob} once the headers arrived.
        L{BlobUnknown} on 404, L{UpstreamUnavailable} otherwise.
        """

    def close() -> object:
        """Close pooled connections. @return: Deferred firing None."""
