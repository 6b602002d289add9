"""
The C{registryd} command: C{registryd serve [CONFIG]} runs the registry in the foreground;
C{registryd garbage-collect CONFIG} deletes what no manifest references.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

USAGE = """\
usage: registryd serve [CONFIG]   run the registry in the foreground (twistd -n registryd)
       registryd garbage-collect CONFIG [--dry-run] [--delete-untagged] [--quiet]
                                  delete blobs no manifest references (safe while serving)
       registryd --version        print the version
"""


def version() -> str:
    """The installed registryd version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distributionVersion

    try:
        return distributionVersion("registryd")
    except PackageNotFoundError:
        import registryd

        return getattr(registryd, "__version__", "unknown")


def twistdArguments(config: str | None) -> list[str]:
    """The twistd command line that serves with config in the foreground, with no pid file."""
    argv = ["twistd", "--nodaemon", "--pidfile=", "registryd"]
    if config is not None:
        argv += ["--config", config]
    return argv


def garbageCollect(argv: Sequence[str]) -> int:
    """C{registryd garbage-collect}: one collection over the configured storage, under the reactor."""
    parser = argparse.ArgumentParser(
        prog="registryd garbage-collect",
        description="Delete blobs no manifest references; safe while the registry serves.",
    )
    parser.add_argument("config", help="the registry's configuration file")
    parser.add_argument("-d", "--dry-run", action="store_true", help="report what would be deleted")
    parser.add_argument(
        "-m", "--delete-untagged", action="store_true", help="also remove manifests no tag reaches"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    options = parser.parse_args(list(argv))

    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    from registryd.config import ConfigError, load
    from registryd.gc import GarbageCollectionStopped, GarbageCollector
    from registryd.plugins import createStorageDriver
    from registryd.registry.core import Registry
    from registryd.registry.descriptorcache import descriptorCacheFor

    def say(line: str) -> None:
        print(line, flush=True)

    def fail(message: str) -> None:
        sys.stderr.write(f"registryd garbage-collect: {message}\n")

    exitCode = 0

    async def collect(reactor: Any) -> None:
        nonlocal exitCode
        try:
            config = load(options.config)
            storage = config.storage
            driver = createStorageDriver(reactor, storage.driver, dict(storage.parameters))
            # A shared (redis) blob descriptor cache must forget what this run deletes;
            # an in-memory one would live only as long as this command, so none is used.
            cache = None
            if storage.blobDescriptorCache == "redis":
                cache = descriptorCacheFor(reactor, storage, config.redis)
                reactor.addSystemEventTrigger("before", "shutdown", cache.close)
            collector = GarbageCollector(
                Registry(driver, descriptorCache=cache),
                dryRun=options.dry_run,
                deleteUntagged=options.delete_untagged,
                gracePeriod=storage.gc.gracePeriod,
                clock=reactor,
                report=None if options.quiet else say,
            )
            # Ctrl-C: the run moves back what it set aside before the process ends.
            reactor.addSystemEventTrigger("before", "shutdown", collector.stop)
            await collector.run()
        except ConfigError as e:
            fail(str(e))
            exitCode = 1
        except GarbageCollectionStopped:
            fail("stopped; nothing set aside was deleted")
            exitCode = 130
        except Exception as e:
            fail(f"{type(e).__name__}: {e}")
            exitCode = 1

    try:
        react(lambda reactor: Deferred.fromCoroutine(collect(reactor)))
    except SystemExit:
        pass
    return exitCode


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; twistd's runner does the serving."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        print(f"registryd {version()}")
        return 0
    if args in (["-h"], ["--help"], ["help"]):
        print(USAGE, end="")
        return 0
    if args and args[0] == "garbage-collect":
        return garbageCollect(args[1:])
    if not args or args[0] != "serve" or len(args) > 2 or (len(args) == 2 and args[1].startswith("-")):
        sys.stderr.write(USAGE)
        return 2
    from twisted.scripts.twistd import run

    sys.argv = twistdArguments(args[1] if len(args) == 2 else None)
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
