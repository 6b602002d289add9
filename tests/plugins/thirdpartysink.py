"""
A throw-away third-party notification sink distribution, built and installed the way a
third party's would be (the approach of L{tests.plugins.thirdparty}): its own project
metadata, its own sink module and its own ``twisted/plugins/`` file, pip-installed into a
directory of its own. The sink appends each batch as one JSON line to a file named by the
endpoint's C{parameters.path}.
"""

from __future__ import annotations

import os

from tests.plugins.thirdparty import pipInstall, writeFiles

DISTRIBUTION = "registryd-testsink"
PACKAGE = "registryd_testsink"
SINK_NAME = "jsonlines"
PLUGIN_MODULE = "registryd_testsink_plugin"

_PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{DISTRIBUTION}"
version = "1.0"
description = "A notification sink for registryd, shipped separately (test material)"

[tool.setuptools]
packages = ["{PACKAGE}", "twisted.plugins"]
"""

_SINK = '''\
"""Writes each batch of events as one JSON line to a file."""

import json

from twisted.internet.defer import fail, succeed
from zope.interface import implementer

from registryd.config.errors import ConfigError
from registryd.notifications.interfaces import INotificationSink, SinkClosed


@implementer(INotificationSink)
class JSONLinesSink:
    def __init__(self, path):
        self.path = path
        self.closed = False

    def write(self, events):
        if self.closed:
            return fail(SinkClosed("jsonlines"))
        with open(self.path, "a") as f:
            f.write(json.dumps(events) + "\\n")
        return succeed(None)

    def close(self):
        self.closed = True
        return succeed(None)


def createSink(reactor, endpoint):
    parameters = dict(endpoint.parameters)
    path = parameters.pop("path", None)
    if not isinstance(path, str):
        raise ConfigError("required: a file path", (*endpoint.keyPath, "parameters", "path"))
    for key in parameters:
        raise ConfigError("unknown parameter", (*endpoint.keyPath, "parameters", key))
    return JSONLinesSink(path)
'''

# Written against the interfaces only, as a third party might; the sink module is
# imported lazily, when a sink is made.
_PLUGIN = f'''\
from twisted.plugin import IPlugin
from zope.interface import implementer

from registryd.notifications.interfaces import INotificationSinkFactory


@implementer(IPlugin, INotificationSinkFactory)
class _Factory:
    name = "{SINK_NAME}"

    def create(self, reactor, endpointConfig):
        from {PACKAGE}.sink import createSink

        return createSink(reactor, endpointConfig)


jsonLinesSink = _Factory()
'''


def installThirdPartySink(workDir: str) -> str:
    """
    Write the distribution under workDir and pip-install it (no network, no dependencies)
    into workDir/site; return that directory, for PYTHONPATH (see
    L{tests.plugins.thirdparty.childEnvironment}).

    @raise RuntimeError: with pip's output, when the install fails.
    """
    files = {
        "pyproject.toml": _PYPROJECT,
        os.path.join(PACKAGE, "__init__.py"): "",
        os.path.join(PACKAGE, "sink.py"): _SINK,
        os.path.join("twisted", "plugins", PLUGIN_MODULE + ".py"): _PLUGIN,
    }
    projectDir = writeFiles(os.path.join(workDir, "project"), files)
    return pipInstall(workDir, projectDir, DISTRIBUTION)
