"""Decoding a job spec file (YAML or JSON) from a hostile user, with bounds.

A spec is a small mapping (see docs/jobs.md), so the decoder refuses, with one
:class:`InvalidInput` naming the source and the limit, what no spec needs and what would
otherwise crash or exhaust the parser: files over :data:`MAX_SPEC_BYTES`, bytes that are
not UTF-8, and nesting deeper than :data:`MAX_SPEC_DEPTH` (10,000 nested lists make the
YAML composer and ``json`` recurse until ``RecursionError``). Depth is measured before
the document is built (YAML events, JSON brackets outside strings), so nothing deep is
ever constructed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rechenwerk.errors import InvalidInput

MAX_SPEC_BYTES = 1024 * 1024  # 1 MiB; a real spec is well under 10 KiB
MAX_SPEC_DEPTH = 32  # nested lists/mappings; a spec needs 2 (env, command)

_HINT = "See docs/jobs.md for the job spec format."
# A JSON string (escapes included) or one structural character / newline.
_JSON_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}\n]')


def decode_spec_bytes(data: bytes, *, source: str) -> Any:
    """Check size and encoding, then :func:`decode_spec_text`."""
    if len(data) > MAX_SPEC_BYTES:
        raise too_large(source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="Save the job spec as UTF-8 (YAML or JSON).",
        ) from None
    return decode_spec_text(text, source=source)


def too_large(source: str) -> InvalidInput:
    return InvalidInput(
        f"{source} is larger than the limit of {MAX_SPEC_BYTES:,} bytes for a job spec",
        hint="A job spec is a short YAML/JSON mapping; put data in files the job reads.",
    )


def decode_spec_text(text: str, *, source: str) -> Any:
    """The decoded document (JSON if it starts with ``{``, YAML otherwise)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise too_large(source)
    import yaml

    is_json = text.lstrip().startswith("{")
    try:
        if is_json:
            _check_json_depth(text, source)
            return json.loads(text)
        _check_yaml_depth(text, source)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{source} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}",
            hint=_HINT,
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"{source} is not valid YAML: {where}{problem}", hint=_HINT) from None
    except (RecursionError, MemoryError):  # safety net: the depth checks come first
        raise _too_deep(source, None) from None


def _too_deep(source: str, line: int | None) -> InvalidInput:
    where = f" at line {line}" if line is not None else ""
    return InvalidInput(
        f"{source} is nested deeper than the limit of {MAX_SPEC_DEPTH} levels{where}",
        hint="A job spec is a flat mapping (lists only in command and env); see docs/jobs.md.",
    )


def _check_json_depth(text: str, source: str) -> None:
    depth, line = 0, 1
    for m in _JSON_TOKEN.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                raise _too_deep(source, line)
        elif tok in "]}":
            depth -= 1
        elif tok == "\n":
            line += 1


def _check_yaml_depth(text: str, source: str) -> None:
    """Walk the parser's events (the parser keeps a state stack, it does not recurse)."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                mark = event.start_mark
                raise _too_deep(source, mark.line + 1 if mark is not None else None)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
