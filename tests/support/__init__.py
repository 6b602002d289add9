"""Helpers shared by the end-to-end tests: real registry processes, OCI layouts, client tools."""
