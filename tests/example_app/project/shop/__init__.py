"""The example shop service, packaged: ``shop-server`` and ``shop-cleanup`` console scripts."""

from importlib.metadata import version as _distribution_version

from packaging.version import Version


def version() -> str:
    """The installed distribution's version, normalized (PEP 440) as the index would show it."""
    return str(Version(_distribution_version("shop")))
