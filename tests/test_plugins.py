"""Storage drivers are plugins: found by name, built from their config section, shipped by anyone."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from uuid import uuid4

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from registryd.config.errors import ConfigError
from registryd.plugins import (
    DuplicatePlugin,
    StorageDriverPlugin,
    createStorageDriver,
    findPlugin,
    pluginsByName,
    storageDriverFactories,
)
from registryd.storage.filesystem import FilesystemDriver
from registryd.storage.inmemory import InMemoryDriver
from registryd.storage.interfaces import IStorageDriverFactory
from tests.plugins import thirdparty


class BuiltInDriverTests(TestCase):
    """The drivers shipped with registryd are found through twisted.plugin."""

    def test_builtInDriversFound(self) -> None:
        factories = storageDriverFactories()
        self.assertIn("filesystem", factories)
        self.assertIn("inmemory", factories)
        for name, factory in factories.items():
            self.assertTrue(verifyObject(IStorageDriverFactory, factory))
            self.assertEqual(factory.name, name)

    def test_createInMemory(self) -> None:
        self.assertIsInstance(createStorageDriver(reactor, "inmemory", None), InMemoryDriver)
        self.assertIsInstance(createStorageDriver(reactor, "inmemory", {}), InMemoryDriver)

    def test_createFilesystem(self) -> None:
        root = os.path.abspath(self.mktemp())
        driver = createStorageDriver(reactor, "filesystem", {"rootdirectory": root, "maxthreads": 30})
        self.addCleanup(driver.stop)
        self.assertIsInstance(driver, FilesystemDriver)
        self.assertEqual((driver.rootDirectory, driver.maxThreads), (root, 30))

    def test_badParameterNamesTheKey(self) -> None:
        e = self.assertRaises(ConfigError, createStorageDriver, reactor, "filesystem", {"maxthreads": 3})
        self.assertEqual(e.keyPath, ("storage", "filesystem", "maxthreads"))
        e = self.assertRaises(ConfigError, createStorageDriver, reactor, "inmemory", {"size": 3})
        self.assertEqual(e.keyPath, ("storage", "inmemory", "size"))

    def test_parametersNotAMapping(self) -> None:
        e = self.assertRaises(ConfigError, createStorageDriver, reactor, "inmemory", ["a"])
        self.assertEqual(e.keyPath, ("storage", "inmemory"))

    def test_unknownDriverListsInstalled(self) -> None:
        e = self.assertRaises(ConfigError, createStorageDriver, reactor, "s4", {})
        self.assertEqual(e.keyPath, ("storage", "s4"))
        self.assertIn("unknown storage driver 's4'", str(e))
        installed = str(e).split("installed: ", 1)[1].split(", ")
        self.assertIn("filesystem", installed)
        self.assertIn("inmemory", installed)
        self.assertEqual(installed, sorted(installed))

    def test_pluginFileIsImportLight(self) -> None:
        """Scanning plugins must not import driver code: a child process imports the plugin file alone."""
        code = textwrap.dedent(
            """
            import json, sys
            import twisted.plugins.registryd_storage
            print(json.dumps(sorted(m for m in sys.modules if m.startswith("registryd"))))
            """
        )
        env = dict(os.environ, PYTHONPATH=thirdparty.REPOSITORY_ROOT)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        loaded = json.loads(out.stdout)
        self.assertNotIn("registryd.storage.filesystem", loaded)
        self.assertNotIn("registryd.storage.inmemory", loaded)
        self.assertIn("registryd.plugins", loaded)

    def test_lazyFactoryImportsOnCreate(self) -> None:
        plugin = StorageDriverPlugin("inmemory-again", "registryd.storage.inmemory")
        self.assertTrue(verifyObject(IStorageDriverFactory, plugin))
        self.assertIsInstance(plugin.create(reactor, {}), InMemoryDriver)
        self.assertIn("inmemory-again", repr(plugin))


_FACTORY = """
from twisted.plugin import IPlugin
from zope.interface import implementer
from registryd.storage.interfaces import IStorageDriverFactory

@implementer(IPlugin, IStorageDriverFactory)
class Factory:
    def __init__(self, name):
        self.name = name
    def create(self, reactor, parameters):
        from registryd.storage.inmemory import InMemoryDriver
        return InMemoryDriver()
"""


class PluginPackageTests(TestCase):
    """Discovery in a plugin package of our making: clashes, broken and nameless plugins."""

    def makePackage(self, modules: dict[str, str]) -> object:
        """A plugin package on sys.path holding the given modules; removed after the test."""
        base = os.path.abspath(self.mktemp())
        name = f"registryd_test_plugins_{uuid4().hex}"
        packageDir = os.path.join(base, name)
        os.makedirs(packageDir)
        with open(os.path.join(packageDir, "__init__.py"), "w") as f:
            f.write("")
        for module, source in modules.items():
            with open(os.path.join(packageDir, module + ".py"), "w") as f:
                f.write(textwrap.dedent(source))
        sys.path.insert(0, base)
        self.addCleanup(sys.path.remove, base)

        def forget() -> None:
            for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[m]

        self.addCleanup(forget)
        return importlib.import_module(name)

    def test_duplicateNamesNamesBoth(self) -> None:
        package = self.makePackage(
            {
                "first": _FACTORY + "clashing = Factory('clash')\n",
                "second": _FACTORY + "alsoClashing = Factory('clash')\n",
            }
        )
        e = self.assertRaises(DuplicatePlugin, storageDriverFactories, package)
        self.assertIsInstance(e, ConfigError)
        self.assertIn("'clash'", str(e))
        self.assertIn(f"{package.__name__}.first.clashing", str(e))
        self.assertIn(f"{package.__name__}.second.alsoClashing", str(e))

    def test_brokenPluginSkipped(self) -> None:
        package = self.makePackage(
            {
                "good": _FACTORY + "good = Factory('good')\n",
                "broken": "raise ImportError('this plugin is broken')\n",
            }
        )
        self.assertEqual(list(storageDriverFactories(package)), ["good"])
        self.flushLoggedErrors(ImportError)

    def test_namelessPluginIgnored(self) -> None:
        package = self.makePackage({"plugins": _FACTORY + "good = Factory('good')\nnameless = Factory('')\n"})
        self.assertEqual(list(storageDriverFactories(package)), ["good"])

    def test_otherInterfacesNotMixedIn(self) -> None:
        package = self.makePackage(
            {
                "plugins": _FACTORY
                + textwrap.dedent(
                    """
                    from twisted.plugin import IPlugin
                    from zope.interface import implementer

                    @implementer(IPlugin)
                    class NotADriver:
                        name = "notadriver"

                    driver = Factory('driver')
                    other = NotADriver()
                    """
                )
            }
        )
        self.assertEqual(list(pluginsByName(IStorageDriverFactory, "storage driver", package)), ["driver"])

    def test_findPluginKeyPath(self) -> None:
        package = self.makePackage({"plugins": _FACTORY + "a = Factory('a')\nb = Factory('b')\n"})
        e = self.assertRaises(
            ConfigError, findPlugin, IStorageDriverFactory, "widget", "c", ("widgets", "c"), package
        )
        self.assertEqual(str(e), "widgets.c: unknown widget 'c'; installed: a, b")
        self.assertIsInstance(createStorageDriver(reactor, "b", {}, package), InMemoryDriver)

    def test_factoryMustMakeADriver(self) -> None:
        package = self.makePackage(
            {
                "plugins": _FACTORY
                + "class Bad(Factory):\n    def create(self, r, p):\n        return 42\nbad = Bad('bad')\n"
            }
        )
        e = self.assertRaises(ConfigError, createStorageDriver, reactor, "bad", {}, package)
        self.assertEqual(e.keyPath, ("storage", "bad"))


class ThirdPartyDriverTests(TestCase):
    """
    A driver shipped as a separate distribution, installed with pip into a directory of
    its own, is found and used by registryd in a process that has it on its path.
    """

    def setUp(self) -> None:
        self.site = thirdparty.installThirdPartyDriver(os.path.abspath(self.mktemp()))

    def runChild(self, code: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=thirdparty.childEnvironment(self.site),
            capture_output=True,
            text=True,
            cwd=os.path.dirname(self.site),
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result

    def test_installedAsADistributionOfItsOwn(self) -> None:
        plugin = os.path.join(self.site, "twisted", "plugins", thirdparty.PLUGIN_MODULE + ".py")
        self.assertTrue(os.path.isfile(plugin))
        self.assertFalse(os.path.exists(os.path.join(self.site, "twisted", "plugins", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(self.site, "registryd")))

    def test_discoveredAndUsed(self) -> None:
        result = self.runChild(
            f"""
            import json
            from twisted.internet import reactor
            from twisted.internet.defer import Deferred
            from registryd.plugins import storageDriverFactories, createStorageDriver

            names = sorted(storageDriverFactories())
            driver = createStorageDriver(reactor, "{thirdparty.DRIVER_NAME}", {{"label": "from-config"}})
            results = []
            async def use():
                await driver.putContent("/docker/registry/v2/x", b"third party")
                results.append((await driver.getContent("/docker/registry/v2/x")).decode())
            Deferred.fromCoroutine(use()).addErrback(results.append)
            print(json.dumps({{"names": names, "name": driver.name, "label": driver.label,
                              "module": type(driver).__module__, "results": results}}))
            """
        )
        report = json.loads(result.stdout)
        for name in ("filesystem", "inmemory", thirdparty.DRIVER_NAME):
            self.assertIn(name, report["names"])
        self.assertEqual(report["name"], thirdparty.DRIVER_NAME)
        self.assertEqual(report["label"], "from-config")
        self.assertEqual(report["module"], f"{thirdparty.PACKAGE}.driver")
        self.assertEqual(report["results"], ["third party"])

    def test_thirdPartyParametersChecked(self) -> None:
        result = self.runChild(
            f"""
            from twisted.internet import reactor
            from registryd.config.errors import ConfigError
            from registryd.plugins import createStorageDriver
            try:
                createStorageDriver(reactor, "{thirdparty.DRIVER_NAME}", {{"label": 7}})
            except ConfigError as e:
                print(e)
            """
        )
        self.assertEqual(result.stdout.strip(), f"storage.{thirdparty.DRIVER_NAME}.label: must be a string")

    def test_notInstalledNotFound(self) -> None:
        """Without the distribution on the path the driver is unknown: it comes from the install alone."""
        self.assertNotIn(thirdparty.DRIVER_NAME, storageDriverFactories())

    def test_thirdPartyRunsTheSharedSuite(self) -> None:
        """The driver author's own tests run registryd's shared driver suite against their driver."""
        result = subprocess.run(
            [sys.executable, "-m", "twisted.trial", f"{thirdparty.PACKAGE}.test_driver"],
            env=thirdparty.childEnvironment(self.site),
            capture_output=True,
            text=True,
            cwd=os.path.dirname(self.site),
        )
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-3000:])
        self.assertIn("PASSED", result.stdout)
