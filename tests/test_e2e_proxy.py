"""
End-to-end pull-through cache: a C{twistd registryd} with a C{proxy} section in front of a
second registryd (basic auth, or token auth with a token server) or Debian's distribution,
driven by skopeo. Upstream requests are counted in the upstream's JSON access log.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from tests.support.cases import RegistryTestCase
from tests.support.containerd import Containerd
from tests.support.layouts import MiB, OCILayout
from tests.support.processes import RegistryProcess
from tests.support.skopeo import Skopeo, compareLayouts
from tests.support.tokens import startTokenServer
from tests.test_e2e_auth_basic import PASSWORDS, writeHtpasswd

JSON_LOG = {"level": "info", "formatter": "json"}
USER = "alice"


def upstreamRequests(registry: RegistryProcess, method: str, route: str) -> Counter:
    """How often the registry's access log shows method on route, by URI."""
    found: Counter = Counter()
    for line in registry.logPath.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("namespace") == "registryd.access" and record.get("route") == route:
            if record.get("method") == method and record.get("status") in (200, 206, 307):
                found[record["uri"]] += 1
    return found


class PullThroughTests(RegistryTestCase):
    def setUp(self) -> None:
        self.source = self.workDirectory() / "source"
        self.image = OCILayout(self.source, seed=11).addImage([256 * 1024, 9 * MiB, 64 * 1024], tag="v1")
        htpasswd = writeHtpasswd(self.workDirectory() / "auth" / "htpasswd")
        self.upstream = self.startRegistryd(
            self.workDirectory() / "upstream",
            auth={"htpasswd": {"realm": "upstream", "path": str(htpasswd)}},
            log=JSON_LOG,
        )
        Skopeo(self.upstream).run(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"{USER}:{PASSWORDS[USER]}",
            f"oci:{self.source}:v1",
            Skopeo(self.upstream).reference("library/app", "v1"),
        )

    def startCache(self, **proxy: object) -> RegistryProcess:
        section = {"remoteurl": self.upstream.url, "username": USER, "password": PASSWORDS[USER], **proxy}
        return self.startRegistryd(self.workDirectory() / "cache", proxy=section)

    def pull(self, cache: RegistryProcess, repository: str, name: str = "copy") -> Path:
        destination = self.workDirectory() / name
        Skopeo(cache).copy(Skopeo(cache).reference(repository, "v1"), f"oci:{destination}:v1")
        return destination

    def test_pull_through_then_upstream_stopped(self) -> None:
        cache = self.startCache()
        copy = self.pull(cache, "library/app")
        self.assertEqual(compareLayouts(self.source, "v1", copy, "v1"), [])
        blobGets = upstreamRequests(self.upstream, "GET", "blob.get")
        self.assertEqual(len(blobGets), len(self.image.blobDigests()) - 1, blobGets)

        self.upstream.stop()
        again = self.pull(cache, "library/app", "again")
        self.assertEqual(compareLayouts(self.source, "v1", again, "v1"), [])
        self.assertEqual(Skopeo(cache).listTags("library/app"), ["v1"])

    def test_pushes_are_unsupported(self) -> None:
        cache = self.startCache(localrepositories=["local/*"])
        request = urllib.request.Request(
            f"{cache.url}/v2/library/app/blobs/uploads/", method="POST", data=b""
        )
        with self.assertRaises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(raised.exception.code, 405)
        self.assertEqual(json.loads(raised.exception.read())["errors"][0]["code"], "UNSUPPORTED")
        # A local repository takes pushes, and is never asked upstream.
        skopeo = Skopeo(cache)
        skopeo.copy(f"oci:{self.source}:v1", skopeo.reference("local/app", "v1"))
        self.assertEqual(skopeo.listTags("local/app"), ["v1"])

    def test_concurrent_pulls_fetch_each_blob_once(self) -> None:
        cache = self.startCache()
        skopeo = Skopeo(cache)
        destinations = [self.workDirectory() / f"copy{i}" for i in range(4)]
        pulls = [
            subprocess.Popen(
                [
                    skopeo.binary,
                    "--insecure-policy",
                    "copy",
                    "--src-tls-verify=false",
                    skopeo.reference("library/app", "v1"),
                    f"oci:{destination}:v1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for destination in destinations
        ]
        for pull in pulls:
            output, _ = pull.communicate(timeout=300)
            self.assertEqual(pull.returncode, 0, output.decode(errors="replace") + cache.logTail())
        for destination in destinations:
            self.assertEqual(compareLayouts(self.source, "v1", destination, "v1"), [])
        blobGets = upstreamRequests(self.upstream, "GET", "blob.get")
        self.assertEqual(len(blobGets), len(self.image.blobDigests()) - 1, blobGets)
        self.assertEqual(set(blobGets.values()), {1}, blobGets)


    def test_containerd_mirror_with_ns(self) -> None:
        # containerd with a hosts.toml mirror for mirror.example asks this cache for
        # library/app with ?ns=mirror.example: the upstream for that prefix serves it.
        cache = self.startRegistryd(
            self.workDirectory() / "cache",
            proxy={
                "upstreams": [
                    {
                        "prefix": "mirror.example/",
                        "remoteurl": self.upstream.url,
                        "username": USER,
                        "password": PASSWORDS[USER],
                    }
                ]
            },
        )
        hosts = self.workDirectory() / "certs.d"
        (hosts / "mirror.example").mkdir(parents=True)
        (hosts / "mirror.example" / "hosts.toml").write_text(
            'server = "https://mirror.example"\n'
            f'[host."{cache.url}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )
        containerd = Containerd(self.workDirectory() / "containerd", cache)
        self.addCleanup(containerd.stop)
        containerd.start()
        reference = "mirror.example/library/app:v1"
        containerd.ctr("images", "pull", "--hosts-dir", str(hosts), "--snapshotter", "native", reference)
        self.assertEqual(containerd.images()[reference][1], self.image.manifest.digest)
        self.assertIn("ns=mirror.example", cache.logPath.read_text())
        self.assertEqual(Skopeo(cache).listTags("mirror.example/library/app"), ["v1"])


class UpstreamsTests(RegistryTestCase):
    """Two upstreams chosen by prefix: one with basic auth, one with token auth (or Debian's distribution)."""

    def test_two_upstreams_by_prefix(self) -> None:
        first = self.workDirectory() / "first"
        OCILayout(first, seed=21).addImage([128 * 1024, 32 * 1024], tag="v1")
        second = self.workDirectory() / "second"
        OCILayout(second, seed=22).addImage([96 * 1024], tag="v1")

        htpasswd = writeHtpasswd(self.workDirectory() / "auth" / "htpasswd")
        basic = self.startRegistryd(
            self.workDirectory() / "basic",
            auth={"htpasswd": {"realm": "basic", "path": str(htpasswd)}},
            log=JSON_LOG,
        )
        tokens = startTokenServer(self, {"puller": ("pull-secret", {"*": ["pull", "push"]})})
        token = self.startRegistryd(
            self.workDirectory() / "token",
            auth=tokens.authSection(self.workDirectory() / "bundle.pem"),
            log=JSON_LOG,
        )
        for registry, layout, creds in (
            (basic, first, f"{USER}:{PASSWORDS[USER]}"),
            (token, second, "puller:pull-secret"),
        ):
            skopeo = Skopeo(registry)
            skopeo.run(
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
                f"oci:{layout}:v1",
                skopeo.reference("team/app", "v1"),
            )

        cache = self.startRegistryd(
            self.workDirectory() / "cache",
            proxy={
                "ttl": "1h",
                "upstreams": [
                    {
                        "prefix": "basic.example/",
                        "remoteurl": basic.url,
                        "username": USER,
                        "password": PASSWORDS[USER],
                    },
                    {
                        "prefix": "token.example/",
                        "remoteurl": token.url,
                        "username": "puller",
                        "password": "pull-secret",
                    },
                ],
            },
        )
        skopeo = Skopeo(cache)
        for repository, layout in (("basic.example/team/app", first), ("token.example/team/app", second)):
            copy = self.workDirectory() / repository.split(".", 1)[0]
            skopeo.copy(skopeo.reference(repository, "v1"), f"oci:{copy}:v1")
            self.assertEqual(compareLayouts(layout, "v1", copy, "v1"), [])
        self.assertTrue(upstreamRequests(basic, "GET", "manifest.get"))
        self.assertTrue(upstreamRequests(token, "GET", "manifest.get"))
        self.assertTrue(any(r["scopes"] for r in tokens.requests if r["user"] == "puller"))
        # containerd mirroring a host here asks for the name without the host, and ?ns=<host>.
        index = json.loads((second / "index.json").read_text())["manifests"][0]
        request = urllib.request.Request(
            f"{cache.url}/v2/team/app/manifests/v1?ns=token.example",
            headers={"Accept": index["mediaType"]},
        )
        with urllib.request.urlopen(request) as response:
            self.assertEqual(response.headers["Docker-Content-Digest"], index["digest"])
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{cache.url}/v2/team/app/manifests/v1?ns=unknown.example")
        self.assertEqual(caught.exception.code, 404)

    def test_distribution_upstream(self) -> None:
        source = self.workDirectory() / "source"
        OCILayout(source, seed=23).addImage([200 * 1024, 40 * 1024], tag="v1")
        upstream = self.startDistribution(self.workDirectory() / "distribution")
        skopeo = Skopeo(upstream)
        skopeo.copy(f"oci:{source}:v1", skopeo.reference("library/app", "v1"))
        cache = self.startRegistryd(self.workDirectory() / "cache", proxy={"remoteurl": upstream.url})
        copy = self.workDirectory() / "copy"
        Skopeo(cache).copy(Skopeo(cache).reference("library/app", "v1"), f"oci:{copy}:v1")
        self.assertEqual(compareLayouts(source, "v1", copy, "v1"), [])
