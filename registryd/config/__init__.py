"""
registryd's configuration: distribution's config.yml keys and shapes, one module per
section, C{REGISTRY_*} environment overrides, and one L{ConfigError} naming the key path.
"""

from registryd.config.configuration import Configuration, parseDocument
from registryd.config.errors import ConfigError
from registryd.config.loader import load

__all__ = ["Configuration", "ConfigError", "load", "parseDocument"]
