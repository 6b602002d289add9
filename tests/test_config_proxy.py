"""Tests for the proxy section (registryd.config.proxy): distribution's keys, upstreams, key errors."""

from __future__ import annotations

from registryd.config.proxy import DEFAULT_TTL
from tests.test_config import MINIMAL, ConfigTestCase


class DistributionProxyTests(ConfigTestCase):
    """distribution's proxy keys load as they are."""

    def test_no_proxy_section(self) -> None:
        self.assertIsNone(self.loadText(MINIMAL).proxy)

    def test_remoteurl_with_credentials_and_default_ttl(self) -> None:
        config = self.loadText(
            self.withSection(
                """\
                proxy:
                  remoteurl: https://registry-1.docker.io/
                  username: alice
                  password: 1234
                """
            )
        ).proxy
        (upstream,) = config.upstreams
        self.assertEqual(upstream.remoteURL, "https://registry-1.docker.io")
        self.assertEqual(upstream.prefix, "")
        self.assertEqual((upstream.username, upstream.password), ("alice", "1234"))
        self.assertEqual(upstream.ttl, DEFAULT_TTL)
        self.assertEqual(config.upstreamFor("library/alpine"), upstream)
        self.assertEqual(upstream.upstreamName("library/alpine"), "library/alpine")
        self.assertFalse(config.isLocal("library/alpine"))

    def test_ttl_go_duration_and_zero(self) -> None:
        for text, seconds in [("24h", 86400.0), ("1h30m", 5400.0), ("0", 0.0), ("'0'", 0.0)]:
            config = self.loadText(self.withSection(f"proxy:\n  remoteurl: http://r:5000\n  ttl: {text}\n"))
            self.assertEqual(config.proxy.upstreams[0].ttl, seconds, text)

    def test_environment_overrides(self) -> None:
        config = self.loadText(
            MINIMAL,
            {
                "REGISTRY_PROXY_REMOTEURL": "https://mirror.example",
                "REGISTRY_PROXY_USERNAME": "bob",
                "REGISTRY_PROXY_PASSWORD": "secret",
                "REGISTRY_PROXY_TTL": "1h",
                "REGISTRY_PROXY_LOCALREPOSITORIES": "[local/*, scratch]",
            },
        ).proxy
        (upstream,) = config.upstreams
        self.assertEqual(
            (upstream.remoteURL, upstream.username, upstream.password, upstream.ttl),
            ("https://mirror.example", "bob", "secret", 3600.0),
        )
        self.assertEqual(config.localRepositories, ("local/*", "scratch"))

    def test_exec_credential_helper_is_refused(self) -> None:
        error = self.assertKeyError(
            self.withSection("proxy:\n  remoteurl: https://r\n  exec: {command: helper}\n"), ("proxy", "exec")
        )
        self.assertIn("not supported", str(error))


class UpstreamsTests(ConfigTestCase):
    """Several upstreams chosen by repository-name prefix, and local repositories."""

    TEXT = """\
        proxy:
          ttl: 2h
          localrepositories: [team/*, scratch]
          upstreams:
            - prefix: docker.io/
              remoteurl: https://registry-1.docker.io
              username: hub
              password: token
            - prefix: docker.io/library
              remoteurl: https://library.example
              ttl: 0
              cacertificates: /etc/ssl/library.pem
            - prefix: quay.io/
              remoteurl: https://quay.io
        """

    def test_longest_prefix_wins_and_is_stripped(self) -> None:
        config = self.loadText(self.withSection(self.TEXT)).proxy
        library = config.upstreamFor("docker.io/library/alpine")
        self.assertEqual(library.remoteURL, "https://library.example")
        self.assertEqual(library.upstreamName("docker.io/library/alpine"), "alpine")
        hub = config.upstreamFor("docker.io/grafana/grafana")
        self.assertEqual(hub.upstreamName("docker.io/grafana/grafana"), "grafana/grafana")
        self.assertEqual((hub.username, hub.password, hub.ttl), ("hub", "token", 7200.0))
        self.assertEqual(library.ttl, 0.0)
        self.assertEqual(library.caCertificates, ("/etc/ssl/library.pem",))
        self.assertEqual(config.upstreamFor("quay.io/coreos/etcd").remoteURL, "https://quay.io")
        self.assertIsNone(config.upstreamFor("ghcr.io/a/b"))
        # A prefix is matched by whole components, and leaves a name to ask for.
        self.assertIsNone(config.upstreamFor("quay.iox/a"))
        self.assertIsNone(config.upstreamFor("docker.io"))

    def test_local_repositories(self) -> None:
        config = self.loadText(self.withSection(self.TEXT)).proxy
        self.assertTrue(config.isLocal("team/app"))
        self.assertTrue(config.isLocal("team/a/b"))
        self.assertTrue(config.isLocal("scratch"))
        self.assertFalse(config.isLocal("scratch2"))
        self.assertFalse(config.isLocal("docker.io/library/alpine"))

    def test_upstream_from_environment(self) -> None:
        config = self.loadText(
            MINIMAL,
            {
                "REGISTRY_PROXY_UPSTREAMS_0_PREFIX": "docker.io/",
                "REGISTRY_PROXY_UPSTREAMS_0_REMOTEURL": "https://registry-1.docker.io",
            },
        ).proxy
        self.assertEqual(config.upstreamFor("docker.io/x/y").remoteURL, "https://registry-1.docker.io")


class ProxyErrorTests(ConfigTestCase):
    """Every mistake is one line naming its key."""

    def test_errors_name_the_key(self) -> None:
        for text, keyPath in [
            ("proxy:\n  ttl: 1h\n", ("proxy", "remoteurl")),
            ("proxy:\n  remoteurl: ftp://r\n", ("proxy", "remoteurl")),
            ("proxy:\n  remoteurl: registry-1.docker.io\n", ("proxy", "remoteurl")),
            ("proxy:\n  remoteurl: https://r:99999\n", ("proxy", "remoteurl")),
            ("proxy:\n  remoteurl: https://r?x=1\n", ("proxy", "remoteurl")),
            ("proxy:\n  remoteurl: https://r\n  ttl: soon\n", ("proxy", "ttl")),
            ("proxy:\n  remoteurl: https://r\n  ttl: -1h\n", ("proxy", "ttl")),
            ("proxy:\n  remoteurl: https://r\n  password: p\n", ("proxy", "username")),
            ("proxy:\n  remoteurl: https://r\n  colour: blue\n", ("proxy", "colour")),
            ("proxy:\n  remoteurl: https://r\n  localrepositories: {a: b}\n", ("proxy", "localrepositories")),
            (
                "proxy:\n  remoteurl: https://r\n  upstreams: [{prefix: a/, remoteurl: https://a}]\n",
                ("proxy", "remoteurl"),
            ),
            ("proxy:\n  upstreams: []\n", ("proxy", "upstreams")),
            ("proxy:\n  upstreams: [{remoteurl: https://a}]\n", ("proxy", "upstreams", "0", "prefix")),
            ("proxy:\n  upstreams: [{prefix: a/}]\n", ("proxy", "upstreams", "0", "remoteurl")),
            (
                "proxy:\n  upstreams: [{prefix: A/, remoteurl: https://a}]\n",
                ("proxy", "upstreams", "0", "prefix"),
            ),
            (
                "proxy:\n  upstreams: [{prefix: a/, remoteurl: https://a, ttl: x}]\n",
                ("proxy", "upstreams", "0", "ttl"),
            ),
            (
                "proxy:\n  upstreams: [{prefix: a/, remoteurl: https://a}, {prefix: a, remoteurl: https://b}]\n",
                ("proxy", "upstreams", "1", "prefix"),
            ),
            (
                "proxy:\n  upstreams: [{prefix: a/, remoteurl: https://a, cacertificates: 3}]\n",
                ("proxy", "upstreams", "0", "cacertificates"),
            ),
        ]:
            self.assertKeyError(self.withSection(text), keyPath)

    def test_bad_value_from_environment_names_the_variable(self) -> None:
        error = self.assertKeyError(MINIMAL, ("proxy", "remoteurl"), {"REGISTRY_PROXY_REMOTEURL": "nowhere"})
        self.assertIn("REGISTRY_PROXY_REMOTEURL", str(error))


class WiringTests(ConfigTestCase):
    """The proxy section builds the cache; what only shows then still names its key."""

    def test_unreadable_ca_certificates_name_the_key(self) -> None:
        from twisted.internet import reactor

        from registryd.config.errors import ConfigError
        from registryd.proxy.service import pullThroughCache
        from registryd.registry.core import Registry
        from registryd.storage.inmemory import InMemoryDriver

        config = self.loadText(
            self.withSection(
                "proxy:\n  upstreams:\n    - {prefix: a/, remoteurl: https://a}\n"
                "    - {prefix: b/, remoteurl: https://b, cacertificates: /nonexistent.pem}\n"
            )
        )
        error = self.assertRaises(
            ConfigError, pullThroughCache, config.proxy, Registry(InMemoryDriver()), reactor
        )
        self.assertEqual(error.keyPath, ("proxy", "upstreams", "1", "cacertificates"))

    def test_routes_follow_the_configuration(self) -> None:
        from twisted.internet import reactor

        from registryd.proxy.service import pullThroughCache
        from registryd.registry.core import Registry
        from registryd.storage.inmemory import InMemoryDriver

        text = UpstreamsTests.TEXT.replace("cacertificates: /etc/ssl/library.pem", "username: lib")
        config = self.loadText(self.withSection(text))
        cache = pullThroughCache(config.proxy, Registry(InMemoryDriver()), reactor)
        self.addCleanup(cache.close)
        self.assertEqual(cache.routeFor("docker.io/library/alpine").upstream.url, "https://library.example")
        self.assertEqual(cache.routeFor("docker.io/library/alpine").ttl, 0.0)
        self.assertTrue(cache.isLocal("team/app"))
