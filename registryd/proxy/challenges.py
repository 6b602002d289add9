"""
Parsing C{WWW-Authenticate} headers (RFC 7235): the challenges an upstream registry answers a
401 with, e.g. C{Bearer realm="https://auth.example/token",service="registry",scope="..."}.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SPACE = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: its scheme (lower case) and its parameters (names lower case)."""

    scheme: str
    parameters: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.parameters[name]

    def get(self, name: str, default: str | None = None) -> str | None:
        """A parameter's value, or C{default} when absent."""
        return self.parameters.get(name, default)


class _Scanner:
    """A cursor over one header value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def skipSpace(self) -> None:
        self.position = _SPACE.match(self.text, self.position).end()

    def atEnd(self) -> bool:
        self.skipSpace()
        return self.position >= len(self.text)

    def peek(self) -> str:
        self.skipSpace()
        return self.text[self.position : self.position + 1]

    def take(self, pattern: re.Pattern[str]) -> str | None:
        self.skipSpace()
        match = pattern.match(self.text, self.position)
        if match is None:
            return None
        self.position = match.end()
        return match.group()

    def quoted(self) -> str:
        """A quoted-string after its opening quote, backslash escapes undone (unterminated: to the end)."""
        value = []
        while self.position < len(self.text):
            character = self.text[self.position]
            self.position += 1
            if character == "\\" and self.position < len(self.text):
                value.append(self.text[self.position])
                self.position += 1
            elif character == '"':
                break
            else:
                value.append(character)
        return "".join(value)


def _parameter(scanner: _Scanner) -> tuple[str, str] | None:
    """C{name=value} at the cursor, or None (cursor unmoved) when what follows is not one."""
    start = scanner.position
    name = scanner.take(_TOKEN)
    if name is None or scanner.peek() != "=":
        scanner.position = start
        return None
    scanner.position += 1
    if scanner.peek() in ("=", ",", ""):
        # C{abc==}: a token68 (base64 padding), not a parameter.
        scanner.position = start
        return None
    if scanner.peek() == '"':
        scanner.position += 1
        return name.lower(), scanner.quoted()
    return name.lower(), scanner.take(_TOKEN) or ""


def parseChallenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in the given C{WWW-Authenticate} values, in order; malformed parts are skipped."""
    challenges = []
    for header in headers:
        scanner = _Scanner(header)
        while not scanner.atEnd():
            if scanner.peek() == ",":
                scanner.position += 1
                continue
            scheme = scanner.take(_TOKEN)
            if scheme is None:
                # Not a challenge: skip to the next comma.
                comma = header.find(",", scanner.position)
                scanner.position = len(header) if comma < 0 else comma + 1
                continue
            parameters: dict[str, str] = {}
            parameter = _parameter(scanner)
            if parameter is None:
                start = scanner.position
                token68 = scanner.take(_TOKEN68)
                if token68 is not None and scanner.peek() not in ("", ","):
                    scanner.position = start
            while parameter is not None:
                parameters.setdefault(*parameter)
                start = scanner.position
                if scanner.peek() != ",":
                    break
                scanner.position += 1
                parameter = _parameter(scanner)
                if parameter is None:
                    # The comma ends this challenge: what follows is the next one's scheme.
                    scanner.position = start
            challenges.append(Challenge(scheme.lower(), parameters))
    return challenges


def preferred(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: Bearer if offered (it is what registries mean), else Basic, else None."""
    byScheme = {}
    for challenge in challenges:
        byScheme.setdefault(challenge.scheme, challenge)
    return byScheme.get("bearer") or byScheme.get("basic")
