"""The shared leaf of clipforge: config base and loading, errors, storage (local/S3), tar I/O, Ray bootstrap.

Imports only `curation/` and itself; every other package may import it.
"""
