"""The pull-through cache: registryd as a mirror of one or more upstream registries."""
