"""Meta-information (arrow 10): experiment scope, assumptions and outside events as notes.

A note has a kind (``experiment``, ``event``, ``assumption``), a title, a markdown body, the
time range it applies to (``valid_from``; ``valid_to`` empty = still in effect) and tags. Notes
live in ``stagelog.annotations``; ``stagelog lineage`` and ``stagelog metrics`` print the notes
whose range overlaps what they show.

A note's id is a UUID5 of (kind, title, valid_from, body), so adding or importing the same
note twice stores it once as far as every reader is concerned (readers keep one row per id).

An experiment plan in markdown is imported as an ``experiment`` note: the first ``# `` heading
is the title, the whole file the body, and ``Key: value`` lines before the first ``## ``
section set ``From``, ``To``, ``Tags``, ``Kind`` and ``Author`` (list bullets and ``**bold**``
keys are fine). See docs/metrics.md.
"""

from __future__ import annotations

import getpass
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from logging_backend.errors import StagelogError

KINDS: tuple[str, ...] = ("experiment", "event", "assumption")
NOTE_NAMESPACE = uuid.UUID("0b6a3a41-2f7e-5d7c-8d8e-6a1f4c0e9b27")
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_META = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?(from|to|tags|kind|author)(?:\*\*|__)?\s*:\s*(?:\*\*|__)?"
    r"\s*(.+?)\s*$",
    re.IGNORECASE,
)


class NoteError(StagelogError):
    """Raised when a note's fields or an imported plan cannot be used."""


@dataclass(frozen=True)
class Note:
    """One annotation."""

    kind: str
    title: str
    body: str
    valid_from: datetime
    valid_to: datetime | None = None
    tags: tuple[str, ...] = ()
    author: str = field(default_factory=lambda: _default_author())

    @property
    def id(self) -> str:
        """Deterministic id: the same note always gets the same id."""
        key = f"{self.kind}\x1f{self.title}\x1f{self.valid_from.isoformat()}\x1f{self.body}"
        return str(uuid.uuid5(NOTE_NAMESPACE, key))


def _default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """Parse a time given on the command line or in a plan, as UTC.

    Accepts ``now``, a relative time in the past (``-30m``, ``-2h``, ``-1d``, ``-10s``) and ISO
    8601 dates or date-times (without a zone they are UTC).

    Raises:
        NoteError: the text is none of these.
    """
    now = now or datetime.now(timezone.utc)
    value = text.strip()
    if value.lower() == "now":
        return now
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise NoteError(
            f"time {text!r} is not 'now', a relative time like -2h, or ISO 8601 "
            "(e.g. 2026-11-26T09:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_tags(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Split ``a,b, c`` into sorted unique tags; tags may not contain whitespace."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    tags = sorted({p.strip() for p in parts if p.strip()})
    for tag in tags:
        if any(ch.isspace() for ch in tag):
            raise NoteError(f"tag {tag!r} contains whitespace; separate tags with commas")
    return tuple(tags)


def make_note(
    kind: str,
    title: str,
    body: str = "",
    valid_from: str | datetime | None = None,
    valid_to: str | datetime | None = None,
    tags: str | Sequence[str] | None = None,
    author: str | None = None,
    now: datetime | None = None,
) -> Note:
    """Build a validated note; ``valid_from`` defaults to now, ``valid_to`` to open-ended.

    Raises:
        NoteError: unknown kind, empty title, unparsable times or a range that ends first.
    """
    if kind not in KINDS:
        raise NoteError(f"note kind {kind!r} is not one of {', '.join(KINDS)}")
    if not title.strip():
        raise NoteError("a note needs a non-empty title")
    now = now or datetime.now(timezone.utc)
    start = valid_from if isinstance(valid_from, datetime) else parse_when(valid_from or "now", now)
    end = valid_to if isinstance(valid_to, datetime) or valid_to is None else parse_when(
        valid_to, now
    )
    if end is not None and end < start:
        raise NoteError(f"note ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    return Note(
        kind=kind,
        title=title.strip(),
        body=body,
        valid_from=start,
        valid_to=end,
        tags=parse_tags(tags),
        author=author or _default_author(),
    )


def parse_plan(text: str, name: str = "plan", now: datetime | None = None) -> Note:
    """Turn a markdown experiment plan into a note (format in the module docstring).

    Args:
        text: the markdown.
        name: used as the title when the plan has no ``# `` heading (e.g. the file name).
        now: the default start time.
    """
    title = ""
    meta: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("## "):
            break
        if line.startswith("# ") and not title:
            title = line[2:].strip()
            continue
        match = _META.match(line)
        if match and match.group(1).lower() not in meta:
            meta[match.group(1).lower()] = match.group(2).strip().strip("`")
    return make_note(
        kind=meta.get("kind", "experiment").lower(),
        title=title or name,
        body=text,
        valid_from=meta.get("from"),
        valid_to=meta.get("to"),
        tags=meta.get("tags"),
        author=meta.get("author"),
        now=now,
    )


def read_plan(path: str | Path, now: datetime | None = None) -> Note:
    """Read a markdown plan file (see ``parse_plan``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NoteError(f"plan file {p} does not exist") from None
    except UnicodeDecodeError:
        raise NoteError(f"plan file {p} is not UTF-8 text") from None
    return parse_plan(text, name=p.stem, now=now)


def _ts(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def add(query: Any, note: Note) -> str:
    """Store a note in ``stagelog.annotations``; returns its id.

    Args:
        query: a ``metrics.Query`` (direct client or the collector's query endpoint).
        note: the note.
    """
    query(
        "INSERT INTO stagelog.annotations "
        "(id, ts, kind, title, body, valid_from, valid_to, tags, author) "
        "SELECT {id:String}, now64(6), {kind:String}, {title:String}, {body:String}, "
        "toDateTime64({valid_from:String}, 6, 'UTC'), "
        "if({valid_to:String} = '', NULL, toDateTime64OrNull({valid_to:String}, 6, 'UTC')), "
        "{tags:Array(String)}, {author:String}",
        {
            "id": note.id,
            "kind": note.kind,
            "title": note.title,
            "body": note.body,
            "valid_from": _ts(note.valid_from),
            "valid_to": "" if note.valid_to is None else _ts(note.valid_to),
            "tags": list(note.tags),
            "author": note.author,
        },
    )
    return note.id


_SELECT = (
    "SELECT id, argMax(kind, ts) AS kind, argMax(title, ts) AS title, argMax(body, ts) AS body, "
    "argMax(valid_from, ts) AS valid_from, argMax(valid_to, ts) AS valid_to, "
    "argMax(tags, ts) AS tags, argMax(author, ts) AS author "
    "FROM stagelog.annotations GROUP BY id"
)


def list_notes(
    query: Any, kind: str | None = None, tag: str | None = None
) -> list[dict[str, Any]]:
    """All notes (one per id), oldest first, optionally of one kind or with one tag."""
    if kind is not None and kind not in KINDS:
        raise NoteError(f"note kind {kind!r} is not one of {', '.join(KINDS)}")
    return query(
        f"SELECT * FROM ({_SELECT}) "
        "WHERE ({kind:String} = '' OR kind = {kind:String}) "
        "AND ({tag:String} = '' OR has(tags, {tag:String})) ORDER BY valid_from, title",
        {"kind": kind or "", "tag": tag or ""},
    )


def overlapping(query: Any, t_from: datetime, t_to: datetime) -> list[dict[str, Any]]:
    """Notes whose range overlaps ``[t_from, t_to]`` (an open-ended note runs until now)."""
    return query(
        f"SELECT * FROM ({_SELECT}) "
        "WHERE valid_from <= toDateTime64({t_to:String}, 6, 'UTC') "
        "AND (valid_to IS NULL OR valid_to >= toDateTime64({t_from:String}, 6, 'UTC')) "
        "ORDER BY valid_from, title",
        {"t_from": _ts(t_from), "t_to": _ts(t_to)},
    )


def _short(value: Any) -> str:
    text = str(value) if value is not None else ""
    return text.replace("T", " ")[:19]


def format_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per note for a terminal: ``[kind] from → to  title  #tags``."""
    lines = []
    for row in rows:
        end = _short(row.get("valid_to")) or "open"
        tags = " ".join(f"#{t}" for t in row.get("tags") or [])
        lines.append(
            f"[{row['kind']}] {_short(row['valid_from'])} → {end}  {row['title']}"
            + (f"  {tags}" if tags else "")
        )
    return lines
