"""The C{registryd} command: C{registryd serve [CONFIG]} runs the registry in the foreground."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """\
usage: registryd serve [CONFIG]   run the registry in the foreground (twistd -n registryd)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; twistd's runner does the serving."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        print(f"registryd {version()}")
        return 0
    if args in (["-h"], ["--help"], ["help"]):
        print(USAGE, end="")
        return 0
    if not args or args[0] != "serve" or len(args) > 2 or (len(args) == 2 and args[1].startswith("-")):
        sys.stderr.write(USAGE)
        return 2
    from twisted.scripts.twistd import run

    sys.argv = twistdArguments(args[1] if len(args) == 2 else None)
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
