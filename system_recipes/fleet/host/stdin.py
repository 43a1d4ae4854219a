"""What ``fleet-host plan|apply`` reads on stdin, checked before anything is done: one line of
JSON, the header, then the host.cfg text (the format: :mod:`.host_step`'s docstring).

Separate from :mod:`.host_step` because it is the step's one untrusted input: every refusal of
a malformed header (one line, naming the key) is here, and nothing here touches the host.
"""

from __future__ import annotations

import json
import re

from system_recipes.fleet.host.basics import StepError, check_name
from system_recipes.fleet.protocol import HEADER_KEYS, Step

MAX_INPUT = 16 * 2**20


def parse_input(data: bytes) -> tuple[dict, str]:
    """The header (checked) and the host.cfg text."""
    if len(data) > MAX_INPUT:
        raise StepError(
            Step.INPUT,
            f"more than {MAX_INPUT} bytes on stdin (expected a header line and a host.cfg)",
        )
    first_line, _, config_bytes = data.partition(b"\n")
    try:
        first = first_line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StepError(Step.INPUT, f"the header is not utf-8 (byte {error.start})") from None
    try:
        config = config_bytes.decode("utf-8")
    except UnicodeDecodeError as error:  # as a host.cfg read from a file is reported
        # core.reading imports zc.buildout: not on a step that has nothing to plan
        from system_recipes.core.buildout.reading import byte_problem

        raise StepError(
            Step.INPUT, f"host.cfg: {byte_problem(config_bytes, error.start)}"
        ) from None
    try:
        header = json.loads(first)
    except ValueError:
        raise StepError(
            Step.INPUT,
            "the first line is not JSON (expected a header such as "
            '{"model": "shop", "revision": 1, "digest": "..."})',
        ) from None
    if not isinstance(header, dict):
        raise StepError(Step.INPUT, "the header is not a JSON object")
    unknown = sorted(set(header) - set(HEADER_KEYS))
    if unknown:
        raise StepError(
            Step.INPUT,
            f"header: unknown key {unknown[0][:40]!r} (expected {', '.join(HEADER_KEYS)})",
        )
    check_name(header.get("model"))
    revision = header.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise StepError(
            Step.INPUT, f"header: revision: {str(revision)[:40]!r} (expected an integer >= 0)"
        )
    if not isinstance(header.get("digest"), str):
        raise StepError(Step.INPUT, "header: digest: missing (expected a string)")
    packages = header.setdefault("packages", {})
    if not isinstance(packages, dict) or not all(
        isinstance(k, str)
        and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9+._-]*", k)
        and (v is None or isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9.+~:_-]+", v))
        for k, v in packages.items()
    ):
        raise StepError(
            Step.INPUT,
            "header: packages: expected an object of package names to versions (or null)",
        )
    if not config.strip():
        raise StepError(Step.INPUT, "no host.cfg after the header")
    return header, config
