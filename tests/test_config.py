"""Tests for registryd.config: distribution's keys, env overrides, defaults, errors naming key paths."""

from __future__ import annotations

import os
import textwrap

import yaml
from twisted.trial.unittest import TestCase

from registryd.config import ConfigError, load, parsers
from registryd.config.http import endpointDescription
from registryd.config.loader import applyEnvironment, defaultRootDirectory

DEBIAN_CONFIG = "/etc/docker/registry/config.yml"

# What Debian's docker-registry package ships as /etc/docker/registry/config.yml, kept here
# so the test also runs where the package is not installed.
DEBIAN_SHIPPED = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/docker/registry
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

MINIMAL = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: /srv/registry
"""


class ConfigTestCase(TestCase):
    """Helpers: write a config file, load it with a given environment, expect errors."""

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
        return path

    def loadText(self, text: str, environ: dict[str, str] | None = None):
        return load(self.write(text), environ or {})

    def assertKeyError(self, text: str, keyPath: tuple[str, ...], environ: dict[str, str] | None = None):
        """Loading text fails with a ConfigError naming keyPath, in one line."""
        error = self.assertRaises(ConfigError, self.loadText, text, environ)
        self.assertEqual(error.keyPath, keyPath, str(error))
        self.assertNotIn("\n", str(error))
        if keyPath:
            self.assertTrue(str(error).startswith(".".join(keyPath) + ": "), str(error))
        return error

    def withSection(self, extra: str) -> str:
        return MINIMAL + textwrap.dedent(extra)


class DistributionConfigTests(ConfigTestCase):
    """Configurations written for distribution load as they are."""

    def test_debian_shipped_config_loads(self) -> None:
        """Debian's file, auth.htpasswd included, loads as it is."""
        config = self.loadText(DEBIAN_SHIPPED)
        self.assertEqual(config.auth.method, "htpasswd")
        self.assertEqual(config.auth.htpasswd.realm, "basic-realm")
        self.assertEqual(config.auth.htpasswd.path, "/etc/docker/registry")

    def test_debian_shipped_config_without_auth_loads(self) -> None:
        document = yaml.safe_load(DEBIAN_SHIPPED)
        del document["auth"]
        config = self.loadText(yaml.safe_dump(document))
        self.assertEqual(config.storage.driver, "filesystem")
        self.assertEqual(config.storage.parameters, {"rootdirectory": "/var/lib/docker-registry"})
        self.assertTrue(config.storage.deleteEnabled)
        self.assertEqual(config.storage.blobDescriptorCache, "inmemory")
        self.assertEqual(config.log.fields, {"service": "registry"})
        self.assertEqual(config.http.headers, {"X-Content-Type-Options": ["nosniff"]})
        self.assertEqual(config.http.endpoint(), "tcp:5000")
        self.assertTrue(config.health.storageDriver.enabled)
        self.assertEqual(config.health.storageDriver.interval, 10.0)
        self.assertEqual(config.health.storageDriver.threshold, 3)

    def test_installed_debian_config_matches_what_we_test(self) -> None:
        """The file on this machine is the one above (so the tests above cover it)."""
        if not os.path.exists(DEBIAN_CONFIG):
            raise self.skipTest("docker-registry is not installed")
        with open(DEBIAN_CONFIG, encoding="utf-8") as f:
            self.assertEqual(yaml.safe_load(f), yaml.safe_load(DEBIAN_SHIPPED))
        self.assertEqual(load(DEBIAN_CONFIG, {}).auth.method, "htpasswd")

    def test_example_config_loads(self) -> None:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        config = load(os.path.join(here, "etc", "registryd", "config.yml"), {})
        self.assertEqual(config.storage.parameters, {"rootdirectory": "/var/lib/registryd"})
        self.assertEqual(config.http.addr, ":5000")

    def test_full_supported_config(self) -> None:
        config = self.loadText(
            """\
            version: "0.1"
            loglevel: debug
            log:
              formatter: json
              accesslog: {disabled: true}
            storage:
              inmemory:
              delete: {enabled: true}
              redirect: {disable: true}
              cache: {blobdescriptor: inmemory, blobdescriptorsize: 100}
              maintenance:
                uploadpurging: {enabled: true, age: 2h30m, interval: 1h, dryrun: true}
                readonly: {enabled: true}
            http:
              addr: 127.0.0.1:5001
              net: tcp
              prefix: /my/nested/registry/
              host: https://registry.example.com/
              relativeurls: true
              secret: s3cret
              draintimeout: 60s
            health:
              storagedriver: {enabled: true, interval: 1500ms, threshold: 0}
            """
        )
        self.assertEqual(config.log.level, "debug")
        self.assertEqual(config.log.formatter, "json")
        self.assertTrue(config.log.accessLogDisabled)
        self.assertEqual((config.storage.driver, config.storage.parameters), ("inmemory", {}))
        self.assertTrue(config.storage.redirectDisabled)
        self.assertTrue(config.storage.readOnly)
        self.assertEqual(config.storage.blobDescriptorCacheSize, 100)
        purging = config.storage.uploadPurging
        self.assertEqual((purging.age, purging.interval, purging.dryRun), (9000.0, 3600.0, True))
        self.assertEqual(config.http.endpoint(), "tcp:5001:interface=127.0.0.1")
        self.assertEqual(config.http.prefix, "/my/nested/registry/")
        self.assertEqual(config.http.host, "https://registry.example.com")
        self.assertTrue(config.http.relativeURLs)
        self.assertEqual(config.http.secret, "s3cret")
        self.assertEqual(config.http.drainTimeout, 60.0)
        self.assertEqual(config.health.storageDriver.interval, 1.5)
        self.assertEqual(config.health.storageDriver.threshold, 1)

    def test_storage_as_bare_driver_name(self) -> None:
        config = self.loadText("version: 0.1\nstorage: inmemory\n")
        self.assertEqual(config.storage.driver, "inmemory")

    def test_log_level_wins_over_deprecated_loglevel(self) -> None:
        config = self.loadText(self.withSection("loglevel: debug\nlog:\n  level: warn\n"))
        self.assertEqual(config.log.level, "warn")

    def test_empty_unsupported_sections_are_accepted(self) -> None:
        config = self.loadText(self.withSection("auth:\nnotifications: {}\nhttp:\n  tls:\n"))
        self.assertEqual(config.storage.driver, "filesystem")

    def test_purging_disabled(self) -> None:
        config = self.loadText(MINIMAL + "  maintenance:\n    uploadpurging:\n      enabled: false\n")
        self.assertFalse(config.storage.uploadPurging.enabled)


class ErrorTests(ConfigTestCase):
    """Every refusal names the key path at fault."""

    def test_unknown_top_level_key(self) -> None:
        self.assertKeyError(self.withSection("colour: blue\n"), ("colour",))

    def test_unknown_nested_keys(self) -> None:
        self.assertKeyError(self.withSection("http:\n  adress: :5000\n"), ("http", "adress"))
        self.assertKeyError(
            self.withSection("log:\n  accesslog:\n    enabled: true\n"), ("log", "accesslog", "enabled")
        )
        self.assertKeyError(
            self.withSection("health:\n  storagedriver:\n    every: 10s\n"),
            ("health", "storagedriver", "every"),
        )
        self.assertKeyError(
            MINIMAL + "  maintenance:\n    readonly:\n      on: true\n",
            ("storage", "maintenance", "readonly", "True"),
        )
        self.assertKeyError(MINIMAL + "  delete:\n    enable: true\n", ("storage", "delete", "enable"))

    def test_wrong_types(self) -> None:
        self.assertKeyError(self.withSection("http:\n  addr: 5000\n"), ("http", "addr"))
        self.assertKeyError(self.withSection("http:\n  relativeurls: maybe\n"), ("http", "relativeurls"))
        self.assertKeyError(
            self.withSection("http:\n  headers:\n    X-A: {b: c}\n"), ("http", "headers", "X-A")
        )
        self.assertKeyError(self.withSection("http: [1, 2]\n"), ("http",))
        self.assertKeyError(MINIMAL + "  delete:\n    enabled: 1\n", ("storage", "delete", "enabled"))
        self.assertKeyError(self.withSection("log:\n  fields: [a]\n"), ("log", "fields"))
        self.assertKeyError(
            self.withSection("health:\n  storagedriver:\n    threshold: three\n"),
            ("health", "storagedriver", "threshold"),
        )
        self.assertKeyError("version: 0.1\nstorage:\n  filesystem: /srv\n", ("storage", "filesystem"))

    def test_bad_values(self) -> None:
        self.assertKeyError(self.withSection("log:\n  level: loud\n"), ("log", "level"))
        self.assertKeyError(self.withSection("log:\n  formatter: xml\n"), ("log", "formatter"))
        self.assertKeyError(self.withSection("loglevel: loud\n"), ("loglevel",))
        self.assertKeyError(self.withSection("http:\n  net: udp\n"), ("http", "net"))
        self.assertKeyError(self.withSection("http:\n  addr: localhost\n"), ("http", "addr"))
        self.assertKeyError(self.withSection("http:\n  addr: :99999\n"), ("http", "addr"))
        self.assertKeyError(self.withSection("http:\n  host: registry.example.com\n"), ("http", "host"))
        self.assertKeyError(self.withSection("http:\n  draintimeout: soon\n"), ("http", "draintimeout"))
        self.assertKeyError(
            MINIMAL + "  maintenance:\n    uploadpurging:\n      age: 1week\n",
            ("storage", "maintenance", "uploadpurging", "age"),
        )
        self.assertKeyError(
            MINIMAL + "  cache:\n    blobdescriptor: memcached\n", ("storage", "cache", "blobdescriptor")
        )

    def test_version(self) -> None:
        self.assertKeyError("storage: inmemory\n", ("version",))
        self.assertKeyError("version: 0.2\nstorage: inmemory\n", ("version",))
        self.assertKeyError("", ("version",))

    def test_storage_driver_count(self) -> None:
        self.assertKeyError("version: 0.1\n", ("storage",))
        self.assertKeyError("version: 0.1\nstorage:\n  delete: {enabled: true}\n", ("storage",))
        error = self.assertKeyError("version: 0.1\nstorage:\n  inmemory:\n  filesystem:\n", ("storage",))
        self.assertIn("inmemory, filesystem", str(error))

    def test_later_features_are_refused_by_name(self) -> None:
        for text, keyPath in [
            ("middleware:\n  registry:\n    - name: a\n", ("middleware", "registry", "0", "name")),
            ("middleware:\n  repository:\n    - name: b\n", ("middleware", "repository", "0", "name")),
            ("reporting:\n  bugsnag: {apikey: k}\n", ("reporting", "bugsnag")),
            ("validation:\n  disabled: true\n", ("validation", "disabled")),
            ("compatibility:\n  schema1: {enabled: true}\n", ("compatibility", "schema1")),
            ("catalog:\n  maxentries: 10\n", ("catalog", "maxentries")),
            ("tags:\n  maxtags: 10\n", ("tags", "maxtags")),
            ("http:\n  http2: {disabled: true}\n", ("http", "http2")),
            ("http:\n  h2c: {enabled: true}\n", ("http", "h2c")),
            ("log:\n  hooks: [{type: mail}]\n", ("log", "hooks")),
        ]:
            error = self.assertKeyError(self.withSection(text), keyPath)
            self.assertIn("not supported yet", str(error))
        self.assertKeyError(
            MINIMAL + "  cache:\n    blobdescriptor: redis\n", ("storage", "cache", "blobdescriptor")
        )
        self.assertKeyError(
            MINIMAL + "  tag:\n    concurrencylimit: 8\n", ("storage", "tag", "concurrencylimit")
        )

    def test_yaml_errors_are_one_line(self) -> None:
        error = self.assertRaises(ConfigError, self.loadText, "version: 0.1\nstorage: [\n")
        self.assertIn("invalid YAML at line", str(error))
        self.assertNotIn("\n", str(error))

    def test_duplicate_keys_are_refused(self) -> None:
        error = self.assertRaises(
            ConfigError, self.loadText, MINIMAL + "http:\n  addr: :1\nhttp:\n  addr: :2\n"
        )
        self.assertIn("'http' given twice", str(error))

    def test_not_a_mapping(self) -> None:
        error = self.assertRaises(ConfigError, self.loadText, "- version\n")
        self.assertIn("must be a YAML mapping", str(error))

    def test_missing_file(self) -> None:
        error = self.assertRaises(ConfigError, load, self.mktemp(), {})
        self.assertIn("cannot read configuration file", str(error))


class EnvironmentTests(ConfigTestCase):
    """REGISTRY_* variables override the file the way distribution's do."""

    def test_override_storage_parameter(self) -> None:
        config = self.loadText(MINIMAL, {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/x"})
        self.assertEqual(config.storage.parameters, {"rootdirectory": "/x"})

    def test_override_scalars_parsed_as_yaml(self) -> None:
        config = self.loadText(
            MINIMAL,
            {
                "REGISTRY_HTTP_ADDR": "127.0.0.1:6000",
                "REGISTRY_LOG_LEVEL": "debug",
                "REGISTRY_STORAGE_DELETE_ENABLED": "true",
                "REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD": "5",
                "REGISTRY_HTTP_HEADERS": "{X-Frame-Options: [DENY]}",
                "REGISTRY_LOG_FIELDS_ENVIRONMENT": "staging",
                "REGISTRY_CONFIGURATION_PATH": "/not/an/override",
                "OTHER_VARIABLE": "ignored: not ours",
            },
        )
        self.assertEqual(config.http.endpoint(), "tcp:6000:interface=127.0.0.1")
        self.assertEqual(config.log.level, "debug")
        self.assertTrue(config.storage.deleteEnabled)
        self.assertEqual(config.health.storageDriver.threshold, 5)
        self.assertEqual(config.http.headers, {"X-Frame-Options": ["DENY"]})
        self.assertEqual(config.log.fields, {"environment": "staging"})

    def test_existing_key_is_matched_case_insensitively(self) -> None:
        config = self.loadText(
            self.withSection("http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n"),
            {"REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS": "[none]"},
        )
        self.assertEqual(config.http.headers, {"X-Content-Type-Options": ["none"]})

    def test_parameter_with_underscore_is_matched(self) -> None:
        document = {"storage": {"gcs": {"project_id": "a"}}}
        applyEnvironment(document, {"REGISTRY_STORAGE_GCS_PROJECT_ID": "b"})
        self.assertEqual(document, {"storage": {"gcs": {"project_id": "b"}}})

    def test_list_index(self) -> None:
        document = {"http": {"headers": {"x": ["a"]}}}
        applyEnvironment(document, {"REGISTRY_HTTP_HEADERS_X_0": "b", "REGISTRY_HTTP_HEADERS_X_1": "c"})
        self.assertEqual(document, {"http": {"headers": {"x": ["b", "c"]}}})
        self.assertRaises(ConfigError, applyEnvironment, document, {"REGISTRY_HTTP_HEADERS_X_9": "d"})

    def test_storage_type_switch_replaces_driver_section(self) -> None:
        """REGISTRY_STORAGE naming another driver drops the file's driver and its parameters."""
        config = self.loadText(
            MINIMAL + "  delete:\n    enabled: true\n",
            {"REGISTRY_STORAGE": "inmemory"},
        )
        self.assertEqual((config.storage.driver, config.storage.parameters), ("inmemory", {}))
        self.assertTrue(config.storage.deleteEnabled)

    def test_storage_type_switch_then_parameters(self) -> None:
        """Variables sort lexically, so the switch applies before the new driver's parameters."""
        config = self.loadText(
            "version: 0.1\nstorage:\n  inmemory:\n",
            {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/tmp/testroot", "REGISTRY_STORAGE": "filesystem"},
        )
        self.assertEqual(config.storage.driver, "filesystem")
        self.assertEqual(config.storage.parameters, {"rootdirectory": "/tmp/testroot"})

    def test_same_storage_type_keeps_parameters(self) -> None:
        config = self.loadText(MINIMAL, {"REGISTRY_STORAGE": "filesystem"})
        self.assertEqual(config.storage.parameters, {"rootdirectory": "/srv/registry"})

    def test_parameters_of_another_driver_make_two_drivers(self) -> None:
        error = self.assertKeyError(MINIMAL, ("storage",), {"REGISTRY_STORAGE_S3_BUCKET": "b"})
        self.assertIn("REGISTRY_STORAGE_S3_BUCKET", str(error))

    def test_unknown_key_from_environment_names_the_variable(self) -> None:
        error = self.assertKeyError(MINIMAL, ("http", "colour"), {"REGISTRY_HTTP_COLOUR": "blue"})
        self.assertIn("REGISTRY_HTTP_COLOUR", str(error))

    def test_bad_value_from_environment_names_the_variable(self) -> None:
        error = self.assertKeyError(MINIMAL, ("http", "relativeurls"), {"REGISTRY_HTTP_RELATIVEURLS": "sure"})
        self.assertIn("REGISTRY_HTTP_RELATIVEURLS", str(error))

    def test_unsupported_feature_from_environment(self) -> None:
        error = self.assertKeyError(
            MINIMAL, ("reporting", "bugsnag"), {"REGISTRY_REPORTING_BUGSNAG_APIKEY": "k"}
        )
        self.assertIn("not supported yet", str(error))

    def test_config_path_from_environment(self) -> None:
        path = self.write(MINIMAL)
        config = load(None, {"REGISTRY_CONFIGURATION_PATH": path})
        self.assertEqual(config.path, path)
        self.assertEqual(config.storage.parameters, {"rootdirectory": "/srv/registry"})


class DefaultsTests(ConfigTestCase):
    """Without a file registryd serves :5000 from filesystem storage in a sensible place."""

    def test_defaults(self) -> None:
        config = load(None, {"HOME": "/home/someone"})
        self.assertEqual(config.storage.driver, "filesystem")
        self.assertEqual(
            config.storage.parameters, {"rootdirectory": defaultRootDirectory({"HOME": "/home/someone"})}
        )
        self.assertEqual(config.http.endpoint(), "tcp:5000")
        self.assertFalse(config.storage.deleteEnabled)
        self.assertIsNone(config.path)

    def test_defaults_with_overrides(self) -> None:
        config = load(
            None, {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data", "REGISTRY_HTTP_ADDR": ":7000"}
        )
        self.assertEqual(config.storage.parameters, {"rootdirectory": "/data"})
        self.assertEqual(config.http.endpoint(), "tcp:7000")

    def test_default_root_directory(self) -> None:
        root = defaultRootDirectory({"XDG_DATA_HOME": "/xdg", "HOME": "/home/someone"})
        if os.access("/var/lib", os.W_OK) or os.access("/var/lib/registryd", os.W_OK):
            self.assertEqual(root, "/var/lib/registryd")
        else:
            self.assertEqual(root, "/xdg/registryd")

    def test_default_root_directory_without_xdg(self) -> None:
        root = defaultRootDirectory({"HOME": "/home/someone"})
        self.assertIn(root, ("/var/lib/registryd", "/home/someone/.local/share/registryd"))


class ParserTests(TestCase):
    """The shared small parsers."""

    def test_durations(self) -> None:
        for text, seconds in [("10s", 10), ("2h10m", 7800), ("168h", 604800), ("1.5h", 5400), ("300ms", 0.3)]:
            self.assertAlmostEqual(parsers.duration(text, ["d"]), seconds)
        self.assertAlmostEqual(parsers.duration(10_000_000_000, ["d"]), 10.0)
        self.assertEqual(parsers.duration("0", ["d"]), 0.0)
        for bad in ["10", "s", "10x", "-1s", "", True, [1]]:
            self.assertRaises(ConfigError, parsers.duration, bad, ["d"])

    def test_sizes(self) -> None:
        self.assertEqual(parsers.size("5M", ["s"]), 5 << 20)
        self.assertEqual(parsers.size("512kb", ["s"]), 512 << 10)
        self.assertEqual(parsers.size(42, ["s"]), 42)
        self.assertRaises(ConfigError, parsers.size, "lots", ["s"])

    def test_booleans(self) -> None:
        self.assertTrue(parsers.boolean("True", ["b"]))
        self.assertFalse(parsers.boolean(False, ["b"]))
        self.assertRaises(ConfigError, parsers.boolean, "yes please", ["b"])

    def test_endpoints(self) -> None:
        self.assertEqual(endpointDescription(":5000"), "tcp:5000")
        self.assertEqual(endpointDescription("0.0.0.0:5000"), "tcp:5000:interface=0.0.0.0")
        self.assertEqual(endpointDescription(":5000", "tcp4"), "tcp:5000:interface=0.0.0.0")
        self.assertEqual(endpointDescription("[::1]:5000"), r"tcp6:5000:interface=\:\:1")
        self.assertEqual(endpointDescription(":5000", "tcp6"), r"tcp6:5000:interface=\:\:")
        self.assertEqual(endpointDescription("/run/registry.sock", "unix"), "unix:/run/registry.sock")
        self.assertRaises(ConfigError, endpointDescription, "[::1]:5000", "tcp4")
        self.assertRaises(ConfigError, endpointDescription, "::1:5000")


class AuthConfigTests(ConfigTestCase):
    """The auth section: one method, distribution's keys, errors naming the key."""

    def test_htpasswd(self) -> None:
        config = self.loadText(self.withSection("auth:\n  htpasswd: {realm: r, path: /p, access: /a.yml}\n"))
        self.assertEqual((config.auth.htpasswd.realm, config.auth.htpasswd.path), ("r", "/p"))
        self.assertEqual(config.auth.htpasswd.access, "/a.yml")
        self.assertEqual(config.auth.method, "htpasswd")

    def test_token(self) -> None:
        config = self.loadText(
            self.withSection(
                "auth:\n  token:\n    realm: https://auth/token\n    service: reg\n    issuer: iss\n"
                "    rootcertbundle: /certs.pem\n    signingalgorithms: [RS256, ES256]\n"
                "    autoredirect: true\n"
            )
        )
        token = config.auth.token
        self.assertEqual((token.realm, token.service, token.issuer), ("https://auth/token", "reg", "iss"))
        self.assertEqual(token.signingAlgorithms, ("RS256", "ES256"))
        self.assertTrue(token.autoRedirect)
        self.assertIsNone(token.jwks)

    def test_silly(self) -> None:
        config = self.loadText(self.withSection("auth:\n  silly: {realm: r, service: s}\n"))
        self.assertEqual(config.auth.method, "silly")

    def test_no_auth(self) -> None:
        self.assertIsNone(self.loadText(MINIMAL).auth.method)

    def test_errors_name_the_key(self) -> None:
        for text, keyPath in [
            ("auth:\n  htpasswd: {path: /p}\n", ("auth", "htpasswd", "realm")),
            ("auth:\n  htpasswd: {realm: r}\n", ("auth", "htpasswd", "path")),
            ("auth:\n  htpasswd: {realm: r, path: /p, users: 3}\n", ("auth", "htpasswd", "users")),
            ("auth:\n  htpasswd: {realm: r, path: [1]}\n", ("auth", "htpasswd", "path")),
            ("auth:\n  token: {realm: r, service: s, issuer: i}\n", ("auth", "token", "rootcertbundle")),
            ("auth:\n  token: {realm: r, issuer: i, jwks: /j}\n", ("auth", "token", "service")),
            (
                "auth:\n  token: {realm: r, service: s, issuer: i, jwks: /j, autoredirect: maybe}\n",
                ("auth", "token", "autoredirect"),
            ),
            ("auth:\n  kerberos: {}\n", ("auth", "kerberos")),
            ("auth:\n  htpasswd: {realm: r, path: /p}\n  silly: {realm: r, service: s}\n", ("auth",)),
        ]:
            self.assertKeyError(self.withSection(text), keyPath)
