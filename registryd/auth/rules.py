"""
Per-repository access rules for htpasswd users (C{auth.htpasswd.access}, beyond distribution).

distribution's basic auth lets every user do everything. An access file says who may do
what, where::

    groups:
      admins: [alice]
    rules:
      - repositories: ["ci/*"]
        users: [buildbot]
        actions: [pull, push]
      - repositories: ["**"]
        groups: [admins]
        actions: [pull, push, delete]
    catalog:
      groups: [admins]
    anonymous:
      pull: ["public/**"]

Rules only grant: a request is allowed when, for each access it needs, some rule grants it
(the union of all rules; their order does not matter, and nothing is denied by a rule).
Patterns match whole repository names: C{*} stands for any characters within one path
component, C{**} (a whole component) for any number of components, zero included, so
C{ci/**} matches C{ci/app} and C{ci/a/b} but not C{ci} itself, and C{**} matches every name.
In C{users}, C{"*"} means any authenticated user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from registryd.auth.interfaces import Access

#: The repository actions a rule may grant (distribution's scopes); C{"*"} in a rule grants them all.
ACTIONS = ("pull", "push", "delete")

ANY_USER = "*"

_PATTERN_COMPONENT = re.compile(r"(?:\*\*|[a-z0-9._*-]+)\Z")


class RulesError(ValueError):
    """An access file that cannot be used; the message names the file and the entry at fault."""


@dataclass(frozen=True)
class RepositoryPattern:
    """A repository name pattern (C{*} within a component, C{**} across components)."""

    text: str
    regex: re.Pattern[str]

    def matches(self, name: str) -> bool:
        """Whether the whole repository name matches."""
        return self.regex.fullmatch(name) is not None


def compilePattern(text: str) -> RepositoryPattern:
    """
    Compile a repository pattern. @raise ValueError: for an empty component, C{**} inside a
    component, or characters no repository name holds (upper case, say).
    """
    if not text:
        raise ValueError("an empty pattern")
    components = text.split("/")
    pieces: list[str] = []
    for index, component in enumerate(components):
        if not _PATTERN_COMPONENT.match(component):
            raise ValueError(
                f"pattern {text!r}: component {component!r} must be lowercase letters, digits, "
                "'.', '_', '-' and '*', or exactly '**'"
            )
        if "**" in component and component != "**":
            raise ValueError(f"pattern {text!r}: '**' must be a whole path component")
        last = index == len(components) - 1
        if component == "**" and not last:
            pieces.append("(?:[^/]+/)*")  # zero or more whole components, each with its separator
        elif component == "**":
            # Ending a pattern: one or more components below what precedes ("a/**" is not "a").
            pieces.append("[^/]+(?:/[^/]+)*")
        else:
            piece = "[^/]*".join(re.escape(part) for part in component.split("*"))
            pieces.append(piece if last else piece + "/")
    return RepositoryPattern(text, re.compile("".join(pieces)))


@dataclass(frozen=True)
class Principals:
    """Who a grant is for: named users (C{"*"}: any authenticated user) and groups."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def include(self, user: str, groups: frozenset[str]) -> bool:
        """Whether the user, or one of its groups, is among these."""
        return ANY_USER in self.users or user in self.users or not self.groups.isdisjoint(groups)


@dataclass(frozen=True)
class Rule:
    """One grant: these principals may do these actions on repositories matching these patterns."""

    patterns: tuple[RepositoryPattern, ...]
    principals: Principals
    actions: frozenset[str]

    def grants(self, user: str, groups: frozenset[str], access: Access) -> bool:
        """Whether this rule grants the access to the user."""
        return (
            access.type == "repository"
            and access.action in self.actions
            and self.principals.include(user, groups)
            and any(pattern.matches(access.name) for pattern in self.patterns)
        )


@dataclass(frozen=True)
class AccessRules:
    """
    The rules of one access file.

    @ivar groups: group name to its members.
    @ivar catalog: who may list the catalog (C{registry:catalog:*}).
    @ivar anonymousPull: repositories anyone may pull without credentials.
    @ivar anonymousCatalog: whether anyone may list the catalog without credentials.
    """

    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    catalog: Principals = Principals()
    anonymousPull: tuple[RepositoryPattern, ...] = ()
    anonymousCatalog: bool = False

    def groupsOf(self, user: str) -> frozenset[str]:
        """The groups the user is a member of."""
        return frozenset(name for name, members in self.groups.items() if user in members)

    def allows(self, user: str, groups: frozenset[str], access: Access) -> bool:
        """Whether an authenticated user (a member of groups) may have the access."""
        if access == CATALOG:
            return self.catalog.include(user, groups)
        return any(rule.grants(user, groups, access) for rule in self.rules)

    def allowsAnonymous(self, access: Access) -> bool:
        """Whether a request without credentials may have the access."""
        if access == CATALOG:
            return self.anonymousCatalog
        return (
            access.type == "repository"
            and access.action == "pull"
            and any(pattern.matches(access.name) for pattern in self.anonymousPull)
        )

    def anonymousAllowed(self, accesses: Sequence[Access]) -> bool:
        """
        Whether a request without credentials may have all of accesses. With none (C{GET /v2/}
        sent with empty Basic credentials) that is whether anonymous requests may do anything.
        """
        if not accesses:
            return bool(self.anonymousPull) or self.anonymousCatalog
        return all(self.allowsAnonymous(access) for access in accesses)


CATALOG = Access("registry", "catalog", "*")


# Parsing. Every error names the entry at fault as a path into the document: rules[1].actions.


def _where(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the document"


def _fail(path: Sequence[str | int], message: str) -> RulesError:
    return RulesError(f"{_where(path)}: {message}")


def _mapping(value: object, path: Sequence[str | int], keys: Iterable[str]) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected a mapping, got {type(value).__name__}")
    allowed = tuple(keys)
    for key in value:
        if key not in allowed:
            raise _fail([*path, str(key)], f"unknown key (expected one of {', '.join(allowed)})")
    return value


def _strings(value: object, path: Sequence[str | int]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _fail(path, f"expected a list of strings, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _fail([*path, index], f"expected a non-empty string, got {item!r}")
    return tuple(value)


def _patterns(value: object, path: Sequence[str | int]) -> tuple[RepositoryPattern, ...]:
    texts = _strings(value, path)
    patterns = []
    for index, text in enumerate(texts):
        try:
            patterns.append(compilePattern(text))
        except ValueError as e:
            raise _fail([*path, index], str(e)) from None
    return tuple(patterns)


def _principals(
    section: Mapping[str, object], path: Sequence[str | int], groups: Mapping[str, frozenset[str]]
) -> Principals:
    users = _strings(section.get("users"), [*path, "users"])
    named = _strings(section.get("groups"), [*path, "groups"])
    for index, group in enumerate(named):
        if group not in groups:
            known = ", ".join(sorted(groups)) or "none defined"
            raise _fail([*path, "groups", index], f"unknown group {group!r} (groups: {known})")
    return Principals(frozenset(users), frozenset(named))


def _groups(value: object) -> dict[str, frozenset[str]]:
    section = value if value is not None else {}
    if not isinstance(section, Mapping):
        raise _fail(["groups"], f"expected a mapping of group names to users, got {type(section).__name__}")
    groups = {}
    for name, members in section.items():
        if not isinstance(name, str) or not name or name == ANY_USER:
            raise _fail(["groups"], f"invalid group name {name!r}")
        groups[name] = frozenset(_strings(members, ["groups", name]))
    return groups


def _rule(value: object, path: list[str | int], groups: Mapping[str, frozenset[str]]) -> Rule:
    section = _mapping(value, path, ("repositories", "users", "groups", "actions"))
    patterns = _patterns(section.get("repositories"), [*path, "repositories"])
    if not patterns:
        raise _fail([*path, "repositories"], "required: the repository patterns this rule applies to")
    actions = _strings(section.get("actions"), [*path, "actions"])
    if not actions:
        raise _fail([*path, "actions"], f"required: some of {', '.join(ACTIONS)}")
    granted: set[str] = set()
    for index, action in enumerate(actions):
        if action == "*":
            granted.update(ACTIONS)
        elif action in ACTIONS:
            granted.add(action)
        else:
            raise _fail(
                [*path, "actions", index], f"unknown action {action!r} (one of {', '.join(ACTIONS)}, *)"
            )
    principals = _principals(section, path, groups)
    if not principals.users and not principals.groups:
        raise _fail(path, "a rule needs users or groups (users: ['*'] for every authenticated user)")
    return Rule(patterns, principals, frozenset(granted))


def parseRules(data: bytes, path: str) -> AccessRules:
    """Parse an access file. @raise RulesError: naming the file and the entry at fault."""
    try:
        try:
            document = yaml.safe_load(data)
        except yaml.YAMLError as e:
            raise RulesError(f"not valid YAML: {' '.join(str(e).split())}") from None
        top = _mapping(document, [], ("groups", "rules", "catalog", "anonymous"))
        groups = _groups(top.get("groups"))
        rawRules = top.get("rules")
        if rawRules is None:
            rawRules = []
        if not isinstance(rawRules, list):
            raise _fail(["rules"], f"expected a list of rules, got {type(rawRules).__name__}")
        rules = tuple(_rule(value, ["rules", index], groups) for index, value in enumerate(rawRules))
        catalog = _principals(
            _mapping(top.get("catalog"), ["catalog"], ("users", "groups")), ["catalog"], groups
        )
        anonymous = _mapping(top.get("anonymous"), ["anonymous"], ("pull", "catalog"))
        anonymousCatalog = anonymous.get("catalog", False)
        if not isinstance(anonymousCatalog, bool):
            raise _fail(["anonymous", "catalog"], f"expected true or false, got {anonymousCatalog!r}")
        return AccessRules(
            groups=groups,
            rules=rules,
            catalog=catalog,
            anonymousPull=_patterns(anonymous.get("pull"), ["anonymous", "pull"]),
            anonymousCatalog=anonymousCatalog,
        )
    except RulesError as e:
        raise RulesError(f"{path}: {e}") from None
