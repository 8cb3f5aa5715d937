"""clipforge's pipeline package: Ray Data stages, the build steps, dedup, shards, stats and the report; `core/` is the
shared leaf (config, errors, storage, tar, Ray bootstrap) and `app/` + `cli.py` the app layer."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("clipforge")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
