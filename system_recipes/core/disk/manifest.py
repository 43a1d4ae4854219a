"""The books: which part owns which file, with the sha256, mode and owner it was written with.

One manifest per state directory, divided by instance (one instance per host configuration),
so several host configurations can share a machine and still see each other's files.
"""

from __future__ import annotations

import json
import os

MANIFEST_NAME = "manifest.json"


class Manifest:
    """``parts[part] = {"recipe": str, "files": {path: {...}}, "directories": {path: {...}},
    "links": {path: {"target": str}}}`` (``links`` only for parts that own symlinks)."""

    def __init__(self, instances: dict | None = None, instance: str = "host"):
        self.instances: dict[str, dict] = instances or {}
        self.instance = instance
        self.parts: dict[str, dict] = self.instances.setdefault(instance, {})
        self._owner_index: dict[str, tuple[str, str]] | None = None

    @classmethod
    def parse(cls, data: bytes | None, instance: str) -> Manifest:
        if data is None:
            return cls(instance=instance)
        return cls(json.loads(data.decode("utf-8"))["instances"], instance)

    @staticmethod
    def read_bytes(state_path: str) -> bytes | None:
        try:
            with open(os.path.join(state_path, MANIFEST_NAME), "rb") as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def dumps(self) -> bytes:
        """``json.dumps(..., indent=1, sort_keys=True)``, byte for byte, made one part at a
        time: json's indented encoder is pure Python and holds every fragment of the whole
        document until it joins them (15 MB for the 2.7 MB of 7000 parts)."""
        instances = {k: v for k, v in self.instances.items() if v}
        out = bytearray()
        _dump_indented({"version": 1, "instances": instances}, 0, out)
        out += b"\n"
        return bytes(out)

    def owner_of(self, path: str) -> tuple[str, str] | None:
        """(instance, part) that owns ``path`` (a file or a link)."""
        return self._owners().get(path)

    def claim(self, path: str, part: str) -> None:
        """``part`` of this instance takes ``path`` over: drop it from the part that had it."""
        owner = self._owners().get(path)
        if owner is not None and owner != (self.instance, part) and owner[0] == self.instance:
            books = self.parts.get(owner[1], {})
            books.get("files", {}).pop(path, None)
            books.get("links", {}).pop(path, None)
        self._owners()[path] = (self.instance, part)

    def _owners(self) -> dict[str, tuple[str, str]]:
        """path -> (instance, part), built once: asking per file was quadratic in the files."""
        if self._owner_index is None:
            self._owner_index = {}
            for instance, parts in self.instances.items():
                for part, books in parts.items():
                    for path in [*books.get("files", {}), *books.get("links", {})]:
                        self._owner_index.setdefault(path, (instance, part))
        return self._owner_index

    def files(self, part: str) -> dict[str, dict]:
        return self.parts.get(part, {}).get("files", {})

    def links(self, part: str) -> dict[str, dict]:
        return self.parts.get(part, {}).get("links", {})

    def directories(self, part: str) -> dict[str, dict]:
        return self.parts.get(part, {}).get("directories", {})


#: the levels of the document above a part's books (the document, instances, an instance)
_OUTER_LEVELS = 3


def _dump_indented(value: object, level: int, out: bytearray) -> None:
    if not isinstance(value, dict) or not value or level >= _OUTER_LEVELS:
        text = json.dumps(value, indent=1, sort_keys=True)
        out += text.replace("\n", "\n" + " " * level).encode("utf-8")  # nested this deep
        return
    out += b"{"
    for index, key in enumerate(sorted(value)):
        out += b"," if index else b""
        out += f"\n{' ' * (level + 1)}{json.dumps(key)}: ".encode()
        _dump_indented(value[key], level + 1, out)
    out += f"\n{' ' * level}}}".encode()
