"""The lineage of one request: every arrow, in pipeline order (view ``lineage_of``)."""

from __future__ import annotations

LINEAGE_SQL = (
    "SELECT step, stage, kind, name, row, detail, value, ts "
    "FROM stagelog.lineage_of(request_id = {request_id:String})"
)
