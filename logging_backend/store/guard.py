"""The reader's SQL guard: one read statement per request, nothing that leaves the store.

The engine's own guarantees come first: every reader query runs on a chDB session with
``readonly = 1`` (no writes, no DDL, no ``SYSTEM``, no setting changes, and chDB 26.9 then also
refuses ``file()``, ``url()``, ``s3()``, ``remote()``, ``mysql()``, ``executable()`` …), plus
``max_execution_time`` and result limits. Tried on chDB 26.9, ``readonly = 1`` still lets
through what this guard refuses:

- several statements in one request (chDB runs them all);
- ``KILL QUERY`` (allowed to a read-only user in ClickHouse);
- ``SELECT … INTO OUTFILE`` (chDB is its own client, so it writes the file);
- the scalar function ``file(path)``, which reads any file the process can read;
- chDB's ``Python(name)`` table function, which reads objects of the collector's process.

The statement class and the functions are read from ClickHouse's own parser (``EXPLAIN AST``)
rather than from regular expressions over the text; only the split into statements and the
first keyword are checked here before the parser sees the statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from logging_backend.errors import StoreError
from logging_backend.store.sqlscan import split_statements, strip_comments

# ClickHouse error codes the HTTP interface reports for refusals.
SYNTAX_ERROR = 62
READONLY = 164
ACCESS_DENIED = 497

ALLOWED_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
# Top-level AST nodes of the allowed statement classes.
_ALLOWED_NODES = re.compile(
    r"^(SelectWithUnionQuery|SelectIntersectExceptQuery|Show\w*|Describe\w*|Explain|"
    r"Exists\w*)\b"
)
# Table functions that only compute (no file, URL, host, process, dictionary or Python object).
SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generaterandom",
        "generate_series", "generateseries", "null", "view", "merge",
    }
)
# Scalar functions that reach outside the store even with readonly = 1.
REFUSED_SCALARS = re.compile(r"^(file|dict\w*|url\w*|s3\w*|remote\w*|executable\w*)$", re.I)
_AST_LINE = re.compile(r"^(?P<indent> *)(?P<node>\w+)(?: (?P<name>[^\s(]+))?")
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"", re.S)


class Refused(StoreError):
    """Raised when the guard refuses a reader's statement (code: the ClickHouse error code)."""

    def __init__(self, message: str, code: int = ACCESS_DENIED, name: str = "ACCESS_DENIED"):
        super().__init__(message)
        self.code = code
        self.name = name


@dataclass(frozen=True)
class Checked:
    """A statement the guard let through.

    Attributes:
        sql: the one statement, without a trailing ``;``.
        node: its top-level AST node (``SelectWithUnionQuery``, ``ShowTables``, …).
        output_format: the format named by its ``FORMAT`` clause, or None.
    """

    sql: str
    node: str
    output_format: str | None


def single_statement(sql: str) -> str:
    """Return the one statement in ``sql`` (comments kept, trailing ``;`` dropped).

    Raises:
        Refused: no statement, several statements, or a statement class readers may not run.
    """
    statements = [s for s in split_statements(sql) if s.strip()]
    if not statements:
        raise Refused("Empty query", SYNTAX_ERROR, "SYNTAX_ERROR")
    if len(statements) > 1:
        raise Refused(
            f"Multi-statements are not allowed: this request holds {len(statements)} "
            "statements; send one statement per request",
            SYNTAX_ERROR,
            "SYNTAX_ERROR",
        )
    statement = statements[0].strip()
    words = strip_comments(statement).lstrip("( \t\r\n").split(None, 1)
    keyword = words[0].upper() if words else ""
    if keyword not in ALLOWED_KEYWORDS:
        raise Refused(
            f"{keyword or 'this'} statements are not allowed on the read-only query "
            "interface: only SELECT, SHOW, DESCRIBE, EXPLAIN and WITH … SELECT (writes reach "
            "the store through the spool and `stagelog migrate`)",
            READONLY,
            "READONLY",
        )
    if _OUTFILE.search(_STRINGS.sub("''", strip_comments(statement))):
        raise Refused("INTO OUTFILE is not allowed on the read-only query interface")
    return statement


def check_ast(statement: str, ast: str, table_functions: frozenset[str] = frozenset()) -> Checked:
    """Check the ``EXPLAIN AST`` text of ``statement``.

    A function in ``FROM`` is a table function unless its name is qualified (``db.view(…)``,
    a parameterized view of the store) or, when ``table_functions`` is given, not among them.

    Args:
        statement: the statement (from ``single_statement``).
        ast: what ``EXPLAIN AST <statement>`` returned (one node per line, indented).
        table_functions: lower-case names of the engine's table functions
            (``system.table_functions``); empty: every unqualified name counts as one.

    Raises:
        Refused: a statement class or a function readers may not use.
    """
    lines = [line for line in ast.splitlines() if line.strip()]
    if not lines:
        raise Refused("the statement could not be parsed", SYNTAX_ERROR, "SYNTAX_ERROR")
    top = _AST_LINE.match(lines[0])
    node = top.group("node") if top else ""
    if not _ALLOWED_NODES.match(node):
        raise Refused(f"{node} statements are not allowed on the read-only query interface",
                      READONLY, "READONLY")
    output_format = None
    parent_at: dict[int, str] = {}
    for line in lines:
        match = _AST_LINE.match(line)
        if not match:
            continue
        depth = len(match.group("indent"))
        kind, name = match.group("node"), match.group("name") or ""
        parent = parent_at.get(depth - 1, "")
        parent_at[depth] = kind
        if kind == "Function":
            if parent == "TableExpression":
                lowered = name.lower()
                is_view = "." in name or (table_functions and lowered not in table_functions)
                if not is_view and lowered not in SAFE_TABLE_FUNCTIONS:
                    raise Refused(
                        f"table function {name}() is not allowed on the read-only query "
                        "interface: it reaches files, URLs, other hosts, processes, "
                        f"dictionaries or objects of the collector (allowed: "
                        f"{', '.join(sorted(SAFE_TABLE_FUNCTIONS))})"
                    )
            elif REFUSED_SCALARS.match(name):
                raise Refused(
                    f"function {name}() is not allowed on the read-only query interface: it "
                    "reaches files, URLs, other hosts or dictionaries"
                )
        elif depth == 1 and kind == "Identifier" and node == "SelectWithUnionQuery":
            output_format = name
        elif depth == 1 and kind == "Literal" and node == "SelectWithUnionQuery":
            raise Refused("INTO OUTFILE is not allowed on the read-only query interface")
    return Checked(statement, node, output_format)


def check(
    sql: str, explain_ast: Callable[[str], str], table_functions: frozenset[str] = frozenset()
) -> Checked:
    """Check one reader request: a single allowed statement, no outside-reaching function.

    Args:
        sql: the request's query text.
        explain_ast: runs ``EXPLAIN AST <statement>`` on a read-only session, returns its text.
        table_functions: see ``check_ast``.

    Raises:
        Refused: the statement is not allowed.
        StoreError: the parser rejected the statement.
    """
    statement = single_statement(sql)
    return check_ast(statement, explain_ast(statement), table_functions)
