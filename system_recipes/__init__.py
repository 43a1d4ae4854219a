"""zc.buildout recipes that write a Linux host's service configuration, transactionally.

The four levels: ``recipes`` (one per kind of file), ``meta`` (one section expands into
several), profiles (``profiles/`` in the source tree) and ``fleet`` (many hosts).
"""
