"""
A plain (non-editable) C{pip install .} into a fresh virtualenv: twistd, run from outside
the source tree, finds the registryd plugin and serves. Plugin discovery is easy to get
wrong, so this runs the real thing (about 10-30 seconds).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from twisted.trial.unittest import TestCase

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = "from twisted.scripts.twistd import run; run()"
_IGNORE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "_trial_temp*",
    "__pycache__",
    "dropin.cache",
    ".venv",
    "bench",
    ".ci",
)


def _freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class InstalledPackageTests(TestCase):
    """The installed package, in a virtualenv that sees the system's Twisted but not our source."""

    def setUp(self) -> None:
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        # Build from a copy: a build/ left in the source tree by anyone must not leak in.
        source = os.path.join(self.work, "source")
        shutil.copytree(SOURCE, source, ignore=_IGNORE)
        self.venv = os.path.join(self.work, "venv")
        self.check([sys.executable, "-m", "venv", "--system-site-packages", self.venv])
        self.python = os.path.join(self.venv, "bin", "python")
        self.check([self.python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", source])
        shutil.rmtree(source)
        (self.sitePackages,) = glob.glob(os.path.join(self.venv, "lib", "python*", "site-packages"))
        self.outside = os.path.join(self.work, "elsewhere")
        os.makedirs(self.outside)

    def environ(self) -> dict[str, str]:
        return {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("REGISTRY_")
        }

    def check(self, argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
        """Run argv to success, outside the source tree and without PYTHONPATH."""
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.environ(), cwd=cwd or self.work, timeout=300
        )
        self.assertEqual(result.returncode, 0, f"{argv}: {result.stdout}{result.stderr}")
        return result

    def test_twisted_package_is_not_shadowed(self) -> None:
        """Only our plugin files land in twisted/plugins: no __init__.py that would hide Twisted's own."""
        twisted = os.path.join(self.sitePackages, "twisted")
        self.assertFalse(os.path.exists(os.path.join(twisted, "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(twisted, "plugins", "__init__.py")))
        installed = sorted(
            name for name in os.listdir(os.path.join(twisted, "plugins")) if name.endswith(".py")
        )
        self.assertIn("registryd_plugin.py", installed)
        self.assertTrue(all(name.startswith("registryd_") for name in installed), installed)
        result = self.check(
            [self.python, "-c", "import registryd, twisted; print(registryd.__file__, twisted.__file__)"]
        )
        registrydFile, twistedFile = result.stdout.split()
        self.assertTrue(registrydFile.startswith(self.sitePackages), registrydFile)
        self.assertFalse(twistedFile.startswith(self.sitePackages), twistedFile)

    def test_twistd_help_lists_registryd(self) -> None:
        result = self.check([self.python, "-c", TWISTD, "--help"], cwd=self.outside)
        self.assertIn("registryd", result.stdout)

    def test_twistd_serves(self) -> None:
        port = _freePort()
        config = os.path.join(self.work, "config.yml")
        with open(config, "w") as f:
            f.write(
                "version: 0.1\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.work}/root\n"
                f"http:\n  addr: 127.0.0.1:{port}\n"
            )
        process = subprocess.Popen(
            [self.python, "-c", TWISTD, "--nodaemon", "--pidfile=", "registryd", "--config", config],
            cwd=self.outside,
            env=self.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5) as response:
                        self.assertEqual(response.status, 200)
                        self.assertEqual(response.headers["Docker-Distribution-API-Version"], "registry/2.0")
                        break
                except OSError as e:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        self.fail(f"twistd did not serve ({e}): {process.communicate()[0]}")
                    time.sleep(0.2)
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
        self.assertIn("registryd on tcp:", output)
