"""Offline validation of scimflow's deployment artifacts (see __main__.py)."""
