"""SQL text scanning shared by migrations and the cluster renderer: comments, statements."""

from __future__ import annotations


def strip_comments(sql: str) -> str:
    """Remove ``--`` line comments and ``/* */`` block comments outside quoted text."""
    out: list[str] = []
    i, n = 0, len(sql)
    quote: str | None = None
    while i < n:
        ch = sql[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(sql[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
            i += 1
        elif ch in "'`\"":
            quote = ch
            out.append(ch)
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_statements(sql: str) -> list[str]:
    """Split a migration file into statements (comments removed, ``;`` outside quotes)."""
    text = strip_comments(sql)
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        current.append(ch)
        if quote:
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'`\"":
            quote = ch
        elif ch == ";":
            current.pop()
            statements.append("".join(current))
            current = []
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]
