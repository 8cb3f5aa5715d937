"""clipforge's orchestration package: config, CLI, storage, Ray bootstrap and the Ray Data stages."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("clipforge")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
