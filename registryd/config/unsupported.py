"""
Top-level sections of distribution's configuration that registryd recognises but does not
implement yet. Setting one stops start-up with a message saying so, rather than running
a registry that silently behaves differently from what the operator configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registryd.config import parsers

# section -> what it is, for the message.
UNSUPPORTED_SECTIONS = {
    "reporting": "error reporting (bugsnag, newrelic)",
    "validation": "manifest validation policy",
    "compatibility": "schema1 compatibility",
    "catalog": "catalog page limits",
    "tags": "tag list page limits",
    "policy": "repository policy",
}


def checkUnsupported(document: Mapping[str, Any]) -> None:
    """Refuse every non-empty section of a feature registryd does not have yet, naming the first key set."""
    for section, what in UNSUPPORTED_SECTIONS.items():
        value = document.get(section)
        if isinstance(value, Mapping) and value:
            # Name the first key set, e.g. auth.htpasswd, so the operator sees what was asked for.
            first = next(iter(value))
            parsers.notSupported(value[first] or True, [section, str(first)], what)
        else:
            parsers.notSupported(value, [section], what)
