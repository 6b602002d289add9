"""
URL converters for the routes: repository names span slashes, so their converter is
not part-isolating and matches the OCI distribution spec's name grammar.
"""

from __future__ import annotations

from werkzeug.routing import BaseConverter

from registryd.registry.names import NAME_PATTERN


class RepositoryNameConverter(BaseConverter):
    """Matches a whole repository name, slashes included."""

    part_isolating = False
    regex = NAME_PATTERN
    weight = 200


CONVERTERS = {"repository": RepositoryNameConverter}
