"""Limits on what a caller may send: request ids, JSON size and depth, valid Unicode.

One rule per thing, used by every entry point: `preprocess` (the ``pipeline`` ensemble) and
`feedback` check request ids with `request_id_problem`, and both check JSON text with
`json_text_problem` before decoding it, so a hostile body gets a coded error naming the row
and the field instead of a ``RecursionError`` or an encoder failure further down.

- Request id: 1 to `MAX_REQUEST_ID_LEN` characters out of `REQUEST_ID_ALPHABET` (letters,
  digits and ``- _ . : / + = @``): a UUID, a ULID or ``client-42/7`` pass; whitespace,
  control characters, quotes and non-ASCII do not (an id is a key in every table and a URL
  path segment in the query door).
- JSON text: at most ``max_bytes`` UTF-8 bytes and ``max_depth`` nested arrays/objects,
  measured without decoding (no recursion, linear time).
- Unicode: a JSON string may spell a lone UTF-16 surrogate (an escape of D800-DFFF);
  Python decodes it into a ``str`` that no UTF-8 encoder accepts; `find_surrogate` names
  where one is.
"""

from __future__ import annotations

import re
from typing import Any

MAX_REQUEST_ID_LEN = 128
REQUEST_ID_ALPHABET = "A-Z a-z 0-9 - _ . : / + = @"
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:/+=@-]+")

# Raw events are flat objects of a dozen fields; these bounds leave room for extra fields
# a caller adds and stay far below what the JSON decoder or the spool could struggle with.
MAX_ROW_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def request_id_problem(value: str) -> str | None:
    """What is wrong with a request id under the one rule, or None when it is fine."""
    if not value:
        return "empty"
    if len(value) > MAX_REQUEST_ID_LEN:
        return f"longer than {MAX_REQUEST_ID_LEN} characters ({len(value)})"
    if _REQUEST_ID.fullmatch(value) is None:
        return (
            "contains whitespace, control or other characters outside "
            f"{REQUEST_ID_ALPHABET}"
        )
    return None


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether ``text`` nests arrays/objects deeper than ``max_depth``.

    Brackets inside strings do not count. Linear, without recursion; a cheap count skips the
    scan for flat text.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def json_text_problem(
    text: str, max_bytes: int = MAX_ROW_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> str | None:
    """What makes JSON ``text`` unacceptable before decoding (size, depth), or None."""
    size = len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text)
    if size > max_bytes:
        return f"larger than {max_bytes} bytes ({size})"
    if json_depth_exceeds(text, max_depth):
        return f"nested deeper than {max_depth} levels"
    return None


def may_hold_surrogate(text: str) -> bool:
    """Whether decoding JSON ``text`` can produce a lone surrogate (a cheap pre-check)."""
    return _SURROGATE_ESCAPE.search(text) is not None or _SURROGATE.search(text) is not None


def find_surrogate(value: Any, path: str = "") -> str | None:
    """The path (``field``, ``a.b``, ``a[2]``) of the first string holding a lone surrogate.

    Keys count too: a bad key is reported by its own path. Iterative, so nesting that the
    decoder accepted cannot overflow the stack here. Returns None when every string is valid.
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where or "(value)"
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and _SURROGATE.search(key):
                    return name.encode("utf-8", "backslashreplace").decode("ascii")
                stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None
