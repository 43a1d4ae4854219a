"""``shop-server``: the example server, reporting the installed distribution's version."""

from . import _server, version


def main(argv=None):
    _server.VERSION = version()  # the script's build-time placeholder, filled from metadata
    return _server.main(argv)
