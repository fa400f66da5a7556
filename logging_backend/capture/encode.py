"""A batch of buffered stage records → one Arrow table per spool table (the flush thread's work).

Column names and types are :data:`logging_backend.spool.schemas.SCHEMAS`. :func:`encode` is a
pure function (unit-tested); :class:`~logging_backend.capture.exporter.SpoolExporter` writes
its tables as spool segments. Class names of probability vectors are handed in by the stage
(``class_names``), never imported from the workload.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from logging_backend.capture.records import (
    ModelIdentity,
    ModelLoad,
    PolicyNotice,
    Record,
    host_array,
)
from logging_backend.errors import SpoolError
from logging_backend.spool.schemas import SCHEMAS

_LOG = logging.getLogger("stagelog.spool")

_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()

# Columns not built as plain Python lists (see _Tables.list_column / map_column).
_BYTES_DTYPE = "BYTES"


def _class_names(n: int, given: Sequence[str] = ()) -> tuple[str, ...]:
    """The stage's class names when there are ``n`` of them, else ``class_0`` .. ``class_n-1``."""
    if len(given) == n:
        return tuple(given)
    return tuple(f"class_{i}" for i in range(n))


def _layout(schema: pa.Schema) -> list[tuple[str, str, pa.DataType, Any, Any]]:
    """Per column: (name, kind scalar/list/map, type, value type, key type)."""
    out = []
    for fld in schema:
        if pa.types.is_map(fld.type):
            out.append((fld.name, "map", fld.type, fld.type.item_type, fld.type.key_type))
        elif pa.types.is_list(fld.type):
            out.append((fld.name, "list", fld.type, fld.type.value_type, None))
        else:
            out.append((fld.name, "scalar", fld.type, None, None))
    return out


_LAYOUTS = {name: _layout(schema) for name, schema in SCHEMAS.items()}


class _Table:
    """Columns of one table under construction: Python lists, plus flat chunks for lists."""

    def __init__(self, name: str) -> None:
        self.schema = SCHEMAS[name]
        self.layout = _LAYOUTS[name]
        self.n = 0
        # scalar columns come either as one tuple per row (``rows``, in the order of
        # ``scalars``: one append per row) or column by column (``cols``: n rows at a time)
        self.scalars = [col for col, kind, *_ in self.layout if kind == "scalar"]
        self.rows: list[tuple[Any, ...]] = []
        self.cols: dict[str, list[Any]] = {}
        # list/map columns: name -> lengths per row, flat value chunks, key chunks (maps)
        self.lens: dict[str, list[int]] = {}
        self.flat: dict[str, list[Any]] = {}
        self.keys: dict[str, list[Any]] = {}
        for col, kind, _, _, _ in self.layout:
            if kind == "scalar":
                self.cols[col] = []
            else:
                self.lens[col] = []
                self.flat[col] = []
                if kind == "map":
                    self.keys[col] = []

    def to_arrow(self) -> pa.Table:
        if self.rows:
            for col, values in zip(self.scalars, zip(*self.rows, strict=True), strict=True):
                self.cols[col].extend(values)
            self.rows = []
        arrays = []
        for col, kind, typ, value_type, key_type in self.layout:
            if kind == "scalar":
                arrays.append(pa.array(self.cols[col], type=typ))
                continue
            offsets = np.zeros(self.n + 1, dtype=np.int32)
            np.cumsum(self.lens[col], out=offsets[1:])
            flat = _concat(self.flat[col], value_type)
            if kind == "map":
                keys = _concat(self.keys[col], key_type)
                arrays.append(pa.MapArray.from_arrays(pa.array(offsets), keys, flat))
            else:
                arrays.append(pa.ListArray.from_arrays(pa.array(offsets), flat))
        return pa.Table.from_arrays(arrays, schema=self.schema)


class _Tables(dict):
    """Table name → :class:`_Table`, made on first use."""

    def __missing__(self, name: str) -> Any:
        if name == "predictions":
            table = self[name] = _Predictions()
        elif name == "stage_tensors":
            table = self[name] = _Tensors()
        else:
            table = self[name] = _Table(name)
        return table


_NO_SUMMARY = ((), ())


class _Tensors:
    """The stage_tensors table: one tuple per tensor, unzipped into columns once per flush.

    Entry: the 8 scalar columns (ts, request_id, stage, model_version, direction, name, dtype,
    policy), then the shape tuple, the float64 values (array or None), the string values
    (object array or None) and the summary (keys, values).
    """

    _SCALAR_TYPES = (_TS, _STR, _STR, _STR, _STR, _STR, _STR, _STR)

    def __init__(self) -> None:
        self.schema = SCHEMAS["stage_tensors"]
        self.n = 0
        self.entries: list[tuple[Any, ...]] = []

    def to_arrow(self) -> pa.Table:
        cols = list(zip(*self.entries, strict=True))
        ts, rid, stage, version, direction, name, dtype, policy = (
            pa.array(list(values), type=typ)
            for values, typ in zip(cols[:8], self._SCALAR_TYPES, strict=True)
        )
        shapes, f64, strs, summaries = cols[8:]
        shape = _lists(
            list(map(len, shapes)), list(itertools.chain.from_iterable(shapes)), pa.uint32()
        )
        values_f64 = _lists(
            [0 if v is None else v.size for v in f64],
            [v for v in f64 if v is not None],
            pa.float64(),
        )
        values_str = _lists(
            [0 if v is None else v.size for v in strs],
            [v for v in strs if v is not None],
            pa.binary(),
        )
        keys, vals = zip(*summaries, strict=True)
        offsets = np.zeros(self.n + 1, dtype=np.int32)
        np.cumsum(list(map(len, keys)), out=offsets[1:])
        summary = pa.MapArray.from_arrays(
            pa.array(offsets),
            pa.array(list(itertools.chain.from_iterable(keys)), type=_STR),
            pa.array(list(itertools.chain.from_iterable(vals)), type=pa.float64()),
        )
        arrays = [
            ts,
            rid,
            stage,
            version,
            direction,
            name,
            dtype,
            shape,
            values_f64,
            values_str,
            summary,
            policy,
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _lists(lens: list[int], chunks: Any, value_type: pa.DataType) -> pa.Array:
    """A list array from lengths per row and the values (a flat list, or chunks for _concat)."""
    offsets = np.zeros(len(lens) + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    if chunks and isinstance(chunks[0], np.ndarray):
        flat = _concat(chunks, value_type)
    else:
        flat = pa.array(chunks, type=value_type)
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


class _Predictions:
    """The predictions table, built per record from NumPy chunks (no per-row Python values).

    A record adds n rows whose ts, request_id, stage, model and model_version repeat; those
    columns are kept as one value plus a count per record and expanded with ``take`` in C. Class
    names (map keys and ``predicted_class``) are indices into one label array.
    """

    def __init__(self) -> None:
        self.schema = SCHEMAS["predictions"]
        self.n = 0
        self.counts: list[int] = []
        self.per_record: list[tuple[Any, ...]] = []  # ts, request_id, stage, model, version
        self.labels: list[str] = [""]  # index 0: the empty class name / decision
        self.label_start: dict[tuple[str, ...], int] = {}
        self.predicted: list[np.ndarray] = []  # label indices per row
        self.key_idx: list[np.ndarray] = []  # label indices per map entry
        self.probs: list[np.ndarray] = []
        self.ks: list[int] = []  # classes per record
        self.decisions: list[Any] = []  # per record: None (all "") or a list of n strings

    def start(self, names: tuple[str, ...]) -> int:
        """Index of ``names[0]`` in the label array (the names are added on first use)."""
        start = self.label_start.get(names)
        if start is None:
            start = self.label_start[names] = len(self.labels)
            self.labels.extend(names)
        return start

    def to_arrow(self) -> pa.Table:
        counts = np.array(self.counts, dtype=np.int64)
        rec_idx = pa.array(np.repeat(np.arange(len(counts)), counts))
        scalar = list(zip(*self.per_record, strict=True))
        ts, rid, stage, model, version = (
            pa.array(list(values), type=typ).take(rec_idx)
            for values, typ in zip(scalar, (_TS, _STR, _STR, _STR, _STR), strict=True)
        )
        starts = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        row = pa.array(np.arange(self.n) - np.repeat(starts, counts), type=pa.uint32())
        labels = pa.array(self.labels, type=_STR)
        predicted = labels.take(pa.array(np.concatenate(self.predicted)))
        if all(d is None for d in self.decisions):
            decision = labels.take(pa.array(np.zeros(self.n, dtype=np.int64)))
        else:
            decided: list[str] = []
            for d, n in zip(self.decisions, self.counts, strict=True):
                decided.extend([""] * n if d is None else d)
            decision = pa.array(decided, type=_STR)
        ks = np.repeat(np.array(self.ks, dtype=np.int32), counts)
        offsets = np.zeros(self.n + 1, dtype=np.int32)
        np.cumsum(ks, out=offsets[1:])
        offsets_arr = pa.array(offsets)
        flat = pa.array(np.concatenate(self.probs), type=pa.float32())
        keys = labels.take(pa.array(np.concatenate(self.key_idx)))
        arrays = [
            ts,
            rid,
            row,
            stage,
            model,
            version,
            pa.MapArray.from_arrays(offsets_arr, keys, flat),
            pa.ListArray.from_arrays(offsets_arr, flat),
            predicted,
            decision,
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _concat(chunks: list[Any], typ: pa.DataType) -> pa.Array:
    """One Arrow array from chunks that are numpy arrays or Python lists (C loops only)."""
    if not chunks:
        return pa.array([], type=typ)
    if all(isinstance(c, np.ndarray) for c in chunks):
        flat = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        try:
            return pa.array(flat, type=typ)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            if not pa.types.is_binary(typ):
                raise
            # an object tensor holding something other than bytes/str: its text, as UTF-8
            return pa.array([_as_bytes(v) for v in flat.tolist()], type=typ)
    out: list[Any] = []
    for chunk in chunks:
        out.extend(chunk.tolist() if isinstance(chunk, np.ndarray) else chunk)
    return pa.array(out, type=typ)


_DTYPE_NAMES: dict[np.dtype, str] = {}


def _dtype_name(dtype: np.dtype) -> str:
    """The dtype name, cached: numpy computes ``dtype.name`` anew each time (µs)."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = dtype.name
    return name


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview, np.bytes_)):
        return bytes(value)
    return str(value).encode("utf-8")


def _is_numeric(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "biuf"


_SMALL = 256  # up to this many elements, Python's min/max beat numpy's per-call overhead


def _byte_lengths(values: list[Any]) -> list[int]:
    """UTF-8 byte length of each value (``map`` over C functions when all are bytes or str)."""
    kinds = set(map(type, values))
    if kinds == {bytes}:
        return list(map(len, values))
    if kinds == {str}:
        return list(map(len, map(str.encode, values)))
    return [len(v) if type(v) is bytes else len(_as_bytes(v)) for v in values]


def _summary(arr: np.ndarray) -> tuple[list[str], list[float]]:
    """Statistics kept under the summary policy (of the byte lengths for string tensors)."""
    prefix = ""
    if not _is_numeric(arr):
        prefix = "len_"
        values: list[Any] = _byte_lengths(arr.ravel().tolist())
        present = values  # lengths are never NaN
    elif arr.size <= _SMALL:
        values = list(map(float, arr.ravel().tolist()))
        present = values
        if arr.dtype.kind == "f":
            present = [v for v in values if v == v]  # NaN != NaN
    else:
        return _summary_numpy(arr.astype(np.float64, copy=False).ravel())
    keys = ["count"]
    vals = [float(len(values))]
    if values:
        keys.append("nan_count")
        vals.append(float(len(values) - len(present)))
        if present:
            keys += [prefix + "min", prefix + "max", prefix + "mean"]
            vals += [float(min(present)), float(max(present)), sum(present) / len(present)]
    return keys, vals


def _summary_numpy(data: np.ndarray) -> tuple[list[str], list[float]]:
    nan = np.isnan(data)
    n_nan = int(nan.sum())
    present = data[~nan] if n_nan else data
    keys = ["count", "nan_count"]
    vals = [float(data.size), float(n_nan)]
    if present.size:
        keys += ["min", "max", "mean"]
        vals += [float(present.min()), float(present.max()), float(present.mean())]
    return keys, vals


def _expand(direction: str, name: str, value: Any) -> list[tuple[str, str, np.ndarray]]:
    if type(value) is np.ndarray:  # the common case: no generator, no host_array call
        return [(direction, name, value)]
    if isinstance(value, dict):
        return [(direction, f"{name}.{key}", host_array(arr)) for key, arr in value.items()]
    return [(direction, name, host_array(value))]


def encode(
    batch: Sequence[Any],
    rss_bytes: int = 0,
    gpu_mem_bytes: dict[int, int | None] | None = None,
) -> dict[str, pa.Table]:
    """Turn buffered items into one Arrow table per ClickHouse table (empty tables left out).

    Args:
        batch: :class:`Record`, :class:`ModelLoad` and :class:`PolicyNotice` items.
        rss_bytes: Process RSS sampled for this batch (stored on every stage_events row).
        gpu_mem_bytes: GPU memory per logger (``id(logger)``), sampled for this batch.

    Returns:
        Table name → Arrow table with the schema of :data:`SCHEMAS`.
    """
    tables = _Tables()
    gpu_mem = gpu_mem_bytes or {}
    data: dict[str, list[dict[str, Any]]] = {}
    for item in batch:
        if isinstance(item, Record):
            if getattr(item.logger, "instrumented", True):
                _encode_record(item, tables, rss_bytes, gpu_mem.get(id(item.logger)))
            for table, rows in item.data:
                data.setdefault(table, []).extend(rows)
        elif isinstance(item, ModelLoad):
            _encode_load(item, tables["model_versions"])
        elif isinstance(item, PolicyNotice):
            _encode_policy(item, tables["logging_policy"])
        else:
            raise SpoolError(f"cannot encode {type(item).__name__} into a spool segment")
    out = {name: t.to_arrow() for name, t in tables.items() if t.n}
    for table, rows in data.items():
        if table in out or table not in SCHEMAS:
            raise SpoolError(f"cannot write caller rows into spool table {table!r}")
        out[table] = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
    return out


def _optional(value: Any, kind: type) -> Any:
    """``value`` as ``kind``, or None (NULL) when it is None or cannot be converted."""
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        _LOG.warning("stagelog: %r is not a %s; stored as NULL", value, kind.__name__)
        return None


def _encode_record(
    rec: Record, tables: dict[str, _Table], rss_bytes: int, gpu_mem: int | None
) -> None:
    ident: ModelIdentity = rec.logger.identity
    policy = rec.logger.policy
    ts_us = rec.ts_ns // 1000
    gpu_ms = rec.gpu_ms
    pending = rec.gpu_pending
    if gpu_ms is None and pending is not None:
        try:
            gpu_ms = pending.resolve()
        except Exception:
            _LOG.exception("stagelog: GPU timing of %s failed; gpu_ms left NULL", ident.model)
    gpu_ms = _optional(gpu_ms, float)
    gpu_mem = _optional(rec.gpu_mem_bytes if rec.gpu_mem_bytes is not None else gpu_mem, int)
    ev = tables["stage_events"]
    ev.rows.append(
        (
            ts_us,
            rec.request_id,
            rec.rows,
            ident.model,
            ident.model,
            ident.model_version,
            ident.triton_version,
            ident.artifact_sha256,
            rec.status,
            rec.error,
            rec.wall_ms,
            rec.cpu_ms,
            gpu_ms,
            rec.device,
            gpu_mem,
            rss_bytes,
            ident.host,
            ident.pid,
            ident.instance,
            policy.mode,
        )
    )
    if policy.mode == "sampled":
        ev.keys["attributes"].append(["tensors"])
        ev.flat["attributes"].append(["kept" if rec.keep else "sampled_out"])
        ev.lens["attributes"].append(1)
    else:
        ev.lens["attributes"].append(0)
    ev.n += 1

    if rec.tensors:
        _encode_tensors(rec, ident, policy.summarizes, policy.mode, ts_us, tables["stage_tensors"])
    for model, probs, decisions in rec.preds:
        try:
            _encode_predictions(rec, ident, ts_us, model, probs, decisions, tables["predictions"])
        except Exception:
            _LOG.exception(
                "stagelog: %s: predictions of %s not logged", ident.model, rec.request_id
            )


def _encode_tensors(
    rec: Record, ident: ModelIdentity, summarize: bool, mode: str, ts_us: int, t: _Tensors
) -> None:
    rid, stage, version = rec.request_id, ident.model, ident.model_version
    for item in rec.tensors:
        try:
            expanded = _expand(*item)
        except Exception:
            _LOG.exception(
                "stagelog: %s: tensor %r of %s not logged", ident.model, item[1], rec.request_id
            )
            continue
        for direction, name, arr in expanded:
            # everything that can fail happens before the first append, so a bad tensor
            # leaves the columns aligned
            try:
                numeric = arr.dtype.kind in "biuf"
                dtype = _dtype_name(arr.dtype) if numeric else _BYTES_DTYPE
                summary = _summary(arr) if summarize else None
                if summary is None and numeric:
                    values = arr.astype(np.float64, copy=False).ravel()
                elif summary is None:
                    values = arr.ravel()
                    if values.dtype != object:  # numpy S/U arrays: bytes or str objects first
                        values = values.astype(object)
                shape = arr.shape
            except Exception:
                _LOG.exception(
                    "stagelog: %s: tensor %r of %s not logged", ident.model, name, rec.request_id
                )
                continue
            t.entries.append(
                (
                    ts_us,
                    rid,
                    stage,
                    version,
                    direction,
                    name,
                    dtype,
                    mode,
                    shape,
                    None if summary is not None or not numeric else values,
                    None if summary is not None or numeric else values,
                    _NO_SUMMARY if summary is None else summary,
                )
            )
            t.n += 1


def _encode_predictions(
    rec: Record,
    ident: ModelIdentity,
    ts_us: int,
    model: str,
    probs: np.ndarray,
    decisions: np.ndarray | None,
    t: _Predictions,
) -> None:
    probs = np.atleast_2d(host_array(probs)).astype(np.float32, copy=False)
    if probs.ndim != 2:
        raise SpoolError(
            f"{ident.model}: probabilities of shape {probs.shape}, not [rows, classes]"
        )
    n, k = probs.shape
    names = _class_names(k, getattr(rec.logger, "class_names", ()))
    if decisions is None:
        decided = None
    else:
        flat = host_array(decisions).ravel().tolist()
        if len(flat) != n:
            raise SpoolError(f"{ident.model}: {len(flat)} decisions for {n} prediction rows")
        decided = [_as_bytes(d).decode("utf-8", "replace") for d in flat]
    start = t.start(names)
    t.predicted.append(probs.argmax(axis=1) + start if k else np.zeros(n, dtype=np.int64))
    t.key_idx.append(np.tile(_class_indices(k) + start, n))
    t.probs.append(probs.ravel())
    t.ks.append(k)
    t.decisions.append(decided)
    t.per_record.append((ts_us, rec.request_id, ident.model, model, ident.model_version))
    t.counts.append(n)
    t.n += n


_CLASS_INDICES: dict[int, np.ndarray] = {}


def _class_indices(k: int) -> np.ndarray:
    arr = _CLASS_INDICES.get(k)
    if arr is None:
        arr = _CLASS_INDICES[k] = np.arange(k, dtype=np.int64)
    return arr


def _encode_load(load: ModelLoad, t: _Table) -> None:
    ident = load.identity
    t.rows.append(
        (
            load.ts_ns // 1000,
            ident.model,
            ident.model_version,
            ident.artifact_sha256,
            ident.triton_version,
            load.model_card,
            ident.host,
            ident.pid,
            ident.instance,
            load.device,
            load.model_config,
        )
    )
    artifacts = load.artifacts or {}
    t.lens["artifacts"].append(len(artifacts))
    t.keys["artifacts"].append(list(artifacts))
    t.flat["artifacts"].append(list(artifacts.values()))
    t.n += 1


def _encode_policy(notice: PolicyNotice, t: _Table) -> None:
    ident = notice.identity
    t.rows.append(
        (
            notice.ts_ns // 1000,
            ident.model,
            ident.model,
            notice.policy,
            notice.sample_rate,
            notice.reason,
            ident.host,
            ident.pid,
            notice.scope,
            notice.dropped,
        )
    )
    t.n += 1
