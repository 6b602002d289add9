"""
URL converters for the routes: repository names span slashes, so their converter is
not part-isolating and matches the OCI distribution spec's name grammar.
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter

# The spec's <name> grammar: path components of lowercase alphanumerics joined by
# separators ('.', '_', '__', or runs of '-'), the components joined by '/'.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"{_COMPONENT}(?:/{_COMPONENT})*"

# distribution accepts upload ids of [a-zA-Z0-9-_.=]+; ours also have to be storage path
# components, which rules out '=' and leading dots.
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")


class RepositoryNameConverter(BaseConverter):
    """Matches a whole repository name, slashes included."""

    part_isolating = False
    regex = NAME_PATTERN
    weight = 200


CONVERTERS = {"repository": RepositoryNameConverter}
