"""Release path: a self-contained source release tarball and an RPM built from it."""
