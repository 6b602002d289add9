"""
A throw-away third-party storage driver distribution, built and installed the way a
third party's would be: its own project metadata, its own driver module and its own
``twisted/plugins/`` file, installed with pip into a directory of its own.

Tests put that directory and the repository on ``PYTHONPATH`` of a child process (see
L{childEnvironment}) to check that registryd finds and uses the driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DISTRIBUTION = "registryd-testdriver"
PACKAGE = "registryd_testdriver"
DRIVER_NAME = "testmemory"
PLUGIN_MODULE = "registryd_testdriver_plugin"

_PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{DISTRIBUTION}"
version = "1.0"
description = "A storage driver for registryd, shipped separately (test material)"

[tool.setuptools]
# twisted.plugins has no __init__.py: it is Twisted's plugin namespace, shared by everyone.
packages = ["{PACKAGE}", "twisted.plugins"]
"""

_DRIVER = f'''\
"""An in-memory driver under another name, with a parameter of its own."""

from registryd.config.errors import ConfigError
from registryd.storage.inmemory import InMemoryDriver


class LabelledMemoryDriver(InMemoryDriver):
    """Content in memory, labelled; proves a driver from outside registryd is used."""

    name = "{DRIVER_NAME}"

    def __init__(self, label):
        super().__init__()
        self.label = label


def createDriver(reactor, parameters):
    """Build the driver; its one parameter is 'label' (a string)."""
    parameters = dict(parameters or {{}})
    label = parameters.pop("label", "unlabelled")
    if not isinstance(label, str):
        raise ConfigError("must be a string", ("storage", "{DRIVER_NAME}", "label"))
    for key in parameters:
        raise ConfigError("unknown parameter", ("storage", "{DRIVER_NAME}", key))
    return LabelledMemoryDriver(label)
'''

# Written against the interfaces only (not registryd's own plugin helper), as a third
# party might; the driver module is imported lazily, when a driver is made.
_PLUGIN = f'''\
from twisted.plugin import IPlugin
from zope.interface import implementer

from registryd.storage.interfaces import IStorageDriverFactory


@implementer(IPlugin, IStorageDriverFactory)
class _Factory:
    name = "{DRIVER_NAME}"

    def create(self, reactor, parameters):
        from {PACKAGE}.driver import createDriver

        return createDriver(reactor, parameters)


testMemoryDriver = _Factory()
'''

_SUITE = f'''\
"""The third party runs registryd's shared driver suite on its own driver."""

from twisted.trial.unittest import TestCase

from registryd.testing.driversuite import StorageDriverTestsMixin
from {PACKAGE}.driver import createDriver


class LabelledMemoryDriverTests(StorageDriverTestsMixin, TestCase):
    def makeDriver(self):
        return createDriver(None, {{"label": "suite"}})
'''


def writeProject(projectDir: str) -> str:
    """Write the distribution's source tree into projectDir (created); return projectDir."""
    files = {
        "pyproject.toml": _PYPROJECT,
        os.path.join(PACKAGE, "__init__.py"): "",
        os.path.join(PACKAGE, "driver.py"): _DRIVER,
        os.path.join(PACKAGE, "test_driver.py"): _SUITE,
        os.path.join("twisted", "plugins", PLUGIN_MODULE + ".py"): _PLUGIN,
    }
    return writeFiles(projectDir, files)


def writeFiles(projectDir: str, files: dict[str, str]) -> str:
    """Write each file (a path under projectDir, dedented content); return projectDir."""
    for relative, content in files.items():
        path = os.path.join(projectDir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(content))
    return projectDir


def installThirdPartyDriver(workDir: str) -> str:
    """
    Write the distribution under workDir and pip-install it (no network, no dependencies)
    into workDir/site; return that directory, for PYTHONPATH.

    @raise RuntimeError: with pip's output, when the install fails (setuptools and wheel
        must be installed: the build runs without isolation).
    """
    projectDir = writeProject(os.path.join(workDir, "project"))
    return pipInstall(workDir, projectDir, DISTRIBUTION)


def pipInstall(workDir: str, projectDir: str, distribution: str) -> str:
    """
    pip-install the project in projectDir (no network, no dependencies, no build isolation)
    into workDir/site; return that directory. @raise RuntimeError: with pip's output, on failure.
    """
    target = os.path.join(workDir, "site")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        target,
        projectDir,
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workDir)
    if result.returncode != 0:
        raise RuntimeError(f"installing {distribution} failed:\n{result.stdout}\n{result.stderr}")
    return target


def childEnvironment(target: str) -> dict[str, str]:
    """The environment for a child Python that sees the installed plugin and this repository."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([target, REPOSITORY_ROOT])
    return env
