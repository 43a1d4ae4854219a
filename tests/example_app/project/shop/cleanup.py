"""``shop-cleanup``: the example cron job, reporting the installed distribution's version."""

from . import _cleanup, version


def main(argv=None):
    _cleanup.VERSION = version()
    return _cleanup.main(argv)
