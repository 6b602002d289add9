"""The twistd plugin: names registryd.tap as a string so plugin discovery imports nothing heavy."""

from twisted.application.service import ServiceMaker

registryd = ServiceMaker(
    "registryd",
    "registryd.tap",
    "A container image registry (Docker Registry HTTP API v2 / OCI Distribution)",
    "registryd",
)
