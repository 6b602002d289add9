"""
The s3 storage driver (also named s3aws): registry content in an S3 bucket, over treq with
botocore's signer. Writers are multipart uploads that outlive a request; see L{driver}.
"""

from __future__ import annotations

from typing import Any

NAME = "s3"


def createDriver(reactor: Any, parameters: dict | None, name: str = NAME) -> Any:
    """Build the driver from its configuration section; a ConfigError names the bad parameter."""
    from registryd.config.errors import ConfigError
    from registryd.storage.s3.client import S3Client, staticCredentials
    from registryd.storage.s3.config import parseParameters
    from registryd.storage.s3.driver import S3Driver

    settings = parseParameters(name, parameters)
    if settings.accessKey is not None and settings.secretKey is not None:
        credentials = staticCredentials(settings.accessKey, settings.secretKey)
    else:
        # The usual chain: environment, shared files, container and instance roles.
        import botocore.session

        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise ConfigError(
                "no accesskey/secretkey and no AWS credentials found in the environment, shared "
                "files or instance metadata",
                ("storage", name, "accesskey"),
            )
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    return S3Driver(settings, S3Client(reactor, settings, credentials))
