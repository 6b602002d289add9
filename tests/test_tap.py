"""Tests for registryd.tap and the twistd plugin: bad configs stop start-up with one line."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.logger import ILogObserver
from twisted.plugin import getPlugins
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import TestCase

from registryd import tap
from registryd.cli import twistdArguments

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OptionsTests(TestCase):
    """registryd's twistd options load and validate the configuration while parsing."""

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_bad_config_is_refused_naming_the_key(self) -> None:
        path = self.write("version: 0.1\nstorage: inmemory\nhttp:\n  adress: :5000\n")
        error = self.assertRaises(tap.ConfigRefused, tap.Options().parseOptions, ["--config", path])
        self.assertEqual(str(error).split(": ")[1], "http.adress")
        self.assertNotIn("\n", str(error))

    def test_unknown_driver_is_refused_listing_installed(self) -> None:
        path = self.write("version: 0.1\nstorage:\n  floppy: {}\n")
        error = self.assertRaises(tap.ConfigRefused, tap.Options().parseOptions, ["-c", path])
        self.assertTrue(str(error).startswith("registryd: storage.floppy: "), str(error))
        self.assertIn("inmemory", str(error))

    def test_missing_file(self) -> None:
        error = self.assertRaises(tap.ConfigRefused, tap.Options().parseOptions, ["-c", self.mktemp()])
        self.assertIn("cannot read configuration file", str(error))

    def test_good_config(self) -> None:
        options = tap.Options()
        options.parseOptions(["--config", self.write("version: 0.1\nstorage: inmemory\n")])
        self.assertEqual(options.configuration.storage.driver, "inmemory")

    def test_twistd_takes_the_log_section(self) -> None:
        """Under twistd the config's log section becomes twistd's logger (unless --logger is given)."""
        path = self.write("version: 0.1\nstorage: inmemory\nlog:\n  formatter: json\n")
        server = ServerOptions()
        server.parseOptions(["--nodaemon", "registryd", "--config", path])
        self.assertIs(server["logger"], tap.configuredLogObserver)
        observer = server["logger"]()
        self.assertTrue(ILogObserver.providedBy(observer))

    def test_plugin_is_found(self) -> None:
        names = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("registryd", names)
        self.assertIsInstance(names["registryd"].options(), tap.Options)


class TwistdProcessTests(TestCase):
    """twistd run as a process from the source tree."""

    def twistd(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        environ.update(env)
        environ["PYTHONPATH"] = SOURCE
        return subprocess.run(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "--nodaemon", *args],
            capture_output=True,
            text=True,
            env=environ,
            cwd="/",
            timeout=60,
        )

    def test_bad_config_one_line_and_nonzero_exit(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("version: 0.1\nstorage: inmemory\nproxy:\n  remoteurl: upstream\n")
        result = self.twistd("registryd", "--config", path)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(
            "proxy.remoteurl: expected an http:// or https:// URL, got 'upstream'",
            result.stdout + result.stderr,
        )
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        self.assertEqual(
            len((result.stdout + result.stderr).strip().splitlines()), 1, result.stdout + result.stderr
        )

    def test_bad_environment_override(self) -> None:
        result = self.twistd("registryd", REGISTRY_STORAGE="floppy")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("storage.floppy: unknown storage driver 'floppy'", result.stdout + result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_cli_arguments(self) -> None:
        self.assertEqual(twistdArguments(None), ["twistd", "--nodaemon", "--pidfile=", "registryd"])
        self.assertEqual(twistdArguments("/etc/r.yml")[-2:], ["--config", "/etc/r.yml"])

    def test_cli_version(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from registryd.cli import main; sys.exit(main())",
                "--version",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SOURCE},
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith("registryd "), result.stdout)
