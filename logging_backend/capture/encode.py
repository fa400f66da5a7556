"""A flush of buffered stage records -> one Arrow table per spool table, built column by column.

The flush thread's only per-record Python is gathering references: one attribute tuple per
record (``attrgetter``) and, for the tensors, a transpose of the records' tensor lists
(``zip``) when every record of the flush has the same tensors in the same order (the usual
flush), else one append per tensor into the group of its (logger, direction, name, dtype).
Every column is then made per table and per group with NumPy / pyarrow vector calls: a
numeric group's values are its tensors' C-order bytes joined once (``np.frombuffer``), ``take``
for values that repeat per record or per logger, ``reduceat`` for summaries, ``argmax`` over
all prediction rows of a model at once.

Tensors keep their dtype: float32 (and float16) values go to ``values_f32``, other numbers to
``values_f64``, strings and bytes byte for byte to ``values_str``.

Each arrow is stored once: an input that the ensemble feeds from another stage's output (the
logger's ``arrow_sources``, ``input name -> (producer stage, producer output)``) is stored as
the digest of the bytes the stage received plus ``source_stage``/``source_name``; its values
are the producer's. An output that another stage refers to (the logger's ``arrow_outputs``)
carries the digest of its bytes next to its values, so SQL can compare both ends of an arrow
(view ``arrow_integrity``); other tensors have an empty digest. The digest is the first 128
bits of SHA-256 (hex; hardware-accelerated on x86 and ARM, unlike BLAKE2b) of the C-order
bytes of a numeric tensor, or, for strings, of the little-endian uint32
byte length of every element followed by all the elements' bytes; dtype and shape are
columns of their own.

Class names of probability vectors are the logger's (``class_names``, handed in by the stage,
never imported from the workload); a vector of another width gets ``class_0``, ``class_1``, ...
Rows a caller sends on purpose (``Record.table_rows``, the feedback model's reports) go to
their own tables, also when the logger is not ``instrumented`` (logging off).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from logging_backend.capture.records import ModelLoad, PolicyNotice, Record, host_array
from logging_backend.errors import SpoolError
from logging_backend.spool.schemas import LC_STR, SCHEMAS

_LOG = logging.getLogger("stagelog.spool")

_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()
_LC = LC_STR  # a LowCardinality(String) column: dictionary-encoded
_BIN = pa.binary()
BYTES_DTYPE = "BYTES"
_EMPTY_I32 = np.zeros(0, dtype=np.int32)
_NO_STR = pa.array([], type=_STR)
_NO_LC = pa.DictionaryArray.from_arrays(pa.array([], type=pa.int32()), _NO_STR)
_NO_F64 = pa.array([], type=pa.float64())

STAGE_EVENTS = SCHEMAS["stage_events"]
STAGE_TENSORS = SCHEMAS["stage_tensors"]
PREDICTIONS = SCHEMAS["predictions"]
MODEL_VERSIONS = SCHEMAS["model_versions"]
LOGGING_POLICY = SCHEMAS["logging_policy"]

_RECORD_FIELDS = operator.attrgetter(
    "logger",
    "ts_ns",
    "request_id",
    "rows",
    "status",
    "error",
    "wall_ms",
    "cpu_ms",
    "gpu_ms",
    "gpu_mem_bytes",
    "gpu_pending",
    "device",
    "keep",
)
_SIZE = operator.attrgetter("size")
_TENSORS = operator.attrgetter("tensors")
_HEAD = operator.itemgetter(0, 1)
_VALUE = operator.itemgetter(2)
_DTYPE = operator.attrgetter("dtype")
_SHAPE = operator.attrgetter("shape")


def digest_bytes(data: Any) -> str:
    """The digest of a numeric tensor's C-order bytes (what :func:`encode` stores)."""
    view = memoryview(np.ascontiguousarray(data)).cast("B")
    return hashlib.sha256(view).hexdigest()[:32]


def digest_strings(values: Sequence[bytes]) -> str:
    """The digest of a string tensor: uint32 LE length of each element, then all the bytes."""
    lengths = np.array([len(v) for v in values], dtype="<u4")
    h = hashlib.sha256(lengths.tobytes())
    h.update(b"".join(values))
    return h.hexdigest()[:32]


def class_labels(k: int, class_names: Sequence[str] = ()) -> tuple[str, ...]:
    """The names of a probability vector of width ``k``: the stage's, else ``class_<i>``."""
    if len(class_names) == k:
        return tuple(class_names)
    return tuple(f"class_{i}" for i in range(k))


_class_names = class_labels  # the name tests and tools used before issue 11


def summary_of(arr: np.ndarray) -> tuple[list[str], list[float]]:
    """The ``summary`` statistics of one tensor (keys, values), as the flush stores them."""
    arr = np.asarray(arr)
    sizes = np.array([arr.size], dtype=np.int64)
    if arr.dtype.kind in "biuf":
        lens, keys, vals = _summaries(arr.ravel(), None, sizes)
    else:
        lens, keys, vals = _summaries(None, _binary(arr.ravel().astype(object)), sizes)
    return keys.to_pylist(), vals.to_pylist()


_summary = summary_of


def encode(
    batch: Sequence[Any],
    rss_bytes: int = 0,
    gpu_mem_bytes: Mapping[int, int | None] | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, pa.Table]:
    """Turn one flush into one Arrow table per spool table (empty tables left out).

    Args:
        batch: :class:`Record`, :class:`ModelLoad` and :class:`PolicyNotice` items.
        rss_bytes: Process RSS sampled for this flush (on every stage_events row).
        gpu_mem_bytes: GPU memory per logger (``id(logger)``), sampled for this flush.
        class_names: Names of the classes of a probability vector, in order; default each
            logger's ``class_names``.

    Returns:
        Table name -> Arrow table with the schema of :data:`SCHEMAS`.

    Raises:
        SpoolError: When an item is of a type this encoder does not know.
    """
    records: list[Record] = []
    loads: list[ModelLoad] = []
    notices: list[PolicyNotice] = []
    data: dict[str, list[dict[str, Any]]] = {}
    for item in batch:
        kind = type(item)
        if kind is Record or isinstance(item, Record):
            if item.data:
                for table, rows in item.data:
                    data.setdefault(table, []).extend(rows)
            if getattr(item.logger, "instrumented", True):
                records.append(item)
        elif isinstance(item, ModelLoad):
            loads.append(item)
        elif isinstance(item, PolicyNotice):
            notices.append(item)
        else:
            raise SpoolError(f"cannot encode {type(item).__name__} into a spool segment")
    out: dict[str, pa.Table] = {}
    if records:
        flush = _Flush(records, rss_bytes, gpu_mem_bytes or {})
        out["stage_events"] = flush.events()
        tensors = flush.tensors()
        if tensors is not None:
            out["stage_tensors"] = tensors
        predictions = flush.predictions(None if class_names is None else tuple(class_names))
        if predictions is not None:
            out["predictions"] = predictions
    if loads:
        out["model_versions"] = _model_versions(loads)
    if notices:
        out["logging_policy"] = _logging_policy(notices)
    for table, rows in data.items():
        if table in out or table not in SCHEMAS:
            raise SpoolError(f"cannot write caller rows into spool table {table!r}")
        out[table] = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
    return out


# -- the records of one flush ------------------------------------------------------------------


class _Flush:
    """The gathered columns of one flush's records, and the tables made from them."""

    def __init__(
        self, records: list[Record], rss_bytes: int, gpu_mem: Mapping[int, int | None]
    ) -> None:
        self.records = records
        self.n = n = len(records)
        (
            loggers,
            self.ts_ns,
            self.request_ids,
            self.rows,
            self.status,
            self.error,
            self.wall_ms,
            self.cpu_ms,
            self.gpu_ms,
            self.gpu_mem,
            self.gpu_pending,
            self.device,
            self.keep,
        ) = zip(*map(_RECORD_FIELDS, records), strict=True)
        self.rss_bytes = rss_bytes
        first = loggers[0]
        if loggers.count(first) == n:  # the usual flush: one model instance per process
            self.loggers = [first]
            self.logger_idx = np.zeros(n, dtype=np.int32)
        else:
            self.loggers = list(dict.fromkeys(loggers))
            pos = {logger: i for i, logger in enumerate(self.loggers)}
            self.logger_idx = np.fromiter(map(pos.__getitem__, loggers), np.int32, n)
        self.logger_gpu_mem = [gpu_mem.get(id(logger)) for logger in self.loggers]
        self._ts = pa.array(np.asarray(self.ts_ns, dtype=np.int64) // 1000, type=_TS)
        self._rid = pa.array(self.request_ids, type=_STR)

    def per_logger(self, values: list[Any], typ: pa.DataType, index: np.ndarray) -> pa.Array:
        """A column whose value is one per logger, expanded to ``index`` (logger per row)."""
        if typ is _LC:
            return _lc_codes(values, index)
        if len(values) == 1:  # the usual flush: one pyarrow call
            return pa.repeat(pa.scalar(values[0], typ), len(index))
        return pa.array(values, type=typ).take(pa.array(index))

    # stage_events ----------------------------------------------------------------------------

    def events(self) -> pa.Table:
        n, idx, loggers = self.n, self.logger_idx, self.loggers
        ident = [lg.identity for lg in loggers]

        def col(attr: str, typ: pa.DataType = _LC) -> pa.Array:
            return self.per_logger([getattr(i, attr) for i in ident], typ, idx)

        policies = [lg.policy.mode for lg in loggers]
        gpu_mem = self.gpu_mem
        if gpu_mem.count(None) == n:
            gpu_mem_col = self.per_logger(self.logger_gpu_mem, pa.uint64(), idx)
        else:
            fallback = self.logger_gpu_mem
            merged = [
                fallback[i] if m is None else m for m, i in zip(gpu_mem, idx.tolist(), strict=True)
            ]
            gpu_mem_col = _nullable(merged, pa.uint64(), int)
        arrays = [
            self._ts,
            self._rid,
            pa.array(self.rows, type=pa.uint32()),
            col("model"),
            col("model"),
            col("model_version"),
            col("triton_version"),
            col("artifact_sha256"),
            _lc_values(self.status),
            pa.array(self.error, type=_STR),
            pa.array(self.wall_ms, type=pa.float64()),
            pa.array(self.cpu_ms, type=pa.float64()),
            _nullable(self._gpu_ms(), pa.float64(), float),
            _lc_values(self.device),
            gpu_mem_col,
            pa.repeat(pa.scalar(self.rss_bytes, pa.uint64()), n),
            col("host"),
            col("pid", pa.uint32()),
            col("instance"),
            self.per_logger(policies, _LC, idx),
            self._attributes(policies),
        ]
        return pa.Table.from_arrays(arrays, schema=STAGE_EVENTS)

    def _gpu_ms(self) -> list[Any]:
        gpu_ms = self.gpu_ms
        if self.gpu_pending.count(None) == self.n:
            return list(gpu_ms)
        out = list(gpu_ms)
        for i, pending in enumerate(self.gpu_pending):
            if pending is None or out[i] is not None:
                continue
            try:
                out[i] = pending.resolve()
            except Exception:
                model = self.records[i].logger.identity.model
                _LOG.exception("stagelog: GPU timing of %s failed; gpu_ms left NULL", model)
        return out

    def _attributes(self, policies: list[str]) -> pa.Array:
        """``{'tensors': kept|sampled_out}`` on rows of a sampled logger, else empty."""
        if "sampled" not in policies:
            return pa.MapArray.from_arrays(_no_offsets(self.n), _NO_LC, _NO_STR)
        sampled = np.array([p == "sampled" for p in policies], dtype=bool)[self.logger_idx]
        offsets = np.zeros(self.n + 1, dtype=np.int32)
        np.cumsum(sampled, out=offsets[1:])
        keep = np.asarray(self.keep, dtype=bool)[sampled]
        keys = _lc_repeat("tensors", len(keep))
        values = pa.array(np.where(keep, "kept", "sampled_out").astype(object), type=_STR)
        return pa.MapArray.from_arrays(pa.array(offsets), keys, values)

    # stage_tensors ---------------------------------------------------------------------------

    def tensors(self) -> pa.Table | None:
        groups = self._uniform_groups()
        if groups is None:
            groups = self._gathered_groups()
        if not groups:
            return None
        columns = _TensorColumns()
        for key, (ris, arrays) in groups.items():
            try:
                self._tensor_group(columns, key, ris, arrays)
            except Exception:
                li, direction, name, _ = key
                _LOG.exception(
                    "stagelog: %s: %d %s tensors %r not logged",
                    self.loggers[li].identity.model,
                    len(ris),
                    direction,
                    name,
                )
        if not columns.m:
            return None
        return columns.table(self)

    def _uniform_groups(self) -> dict[tuple[Any, ...], tuple[list[int], list[Any]]] | None:
        """The groups of the usual flush in C-level calls, or None when it is not usual.

        Usual: one model instance, and every record with the same tensors in the same order
        (direction, name, dtype), all numpy arrays (``Record.state`` stores a mapping as one
        tensor per key already). The
        records' tensor lists are transposed (``zip``), so a group costs a few calls whatever
        its number of records; anything else (a failed request with fewer tensors, a sampled
        record without any, a device array) takes :meth:`_gathered_groups`, same result.
        """
        lists = list(map(_TENSORS, self.records))
        width = len(lists[0])
        if not width or len(self.loggers) != 1 or set(map(len, lists)) != {width}:
            return None
        ris = list(range(self.n))
        groups: dict[tuple[Any, ...], tuple[list[int], list[Any]]] = {}
        for column in zip(*lists, strict=True):
            heads = set(map(_HEAD, column))
            if len(heads) != 1:
                return None
            ((direction, name),) = heads
            arrays = list(map(_VALUE, column))
            if set(map(type, arrays)) != {np.ndarray}:
                return None
            dtypes = set(map(_DTYPE, arrays))
            if len(dtypes) != 1:
                return None
            (dtype,) = dtypes
            key = (0, direction, name, dtype)
            if key in groups:
                return None  # one name twice in a record: the general path merges them
            groups[key] = (ris, arrays)
        return groups

    def _gathered_groups(self) -> dict[tuple[Any, ...], tuple[list[int], list[Any]]]:
        """The groups of any flush, record by record and tensor by tensor."""
        groups: dict[tuple[Any, ...], tuple[list[int], list[Any]]] = {}
        idx = self.logger_idx.tolist()
        for ri, rec in enumerate(self.records):
            if not rec.tensors:
                continue
            li = idx[ri]
            for direction, name, value in rec.tensors:
                kind = type(value)
                if kind is np.ndarray:
                    key = (li, direction, name, value.dtype)
                    group = groups.get(key)
                    if group is None:
                        group = groups[key] = ([], [])
                    group[0].append(ri)
                    group[1].append(value)
                else:
                    self._gather_other(groups, ri, li, direction, name, value)
        return groups

    def _gather_other(
        self, groups: dict, ri: int, li: int, direction: str, name: str, value: Any
    ) -> None:
        """A mapping (one tensor per key) or a device array (fetched here): the slow path."""
        try:
            if isinstance(value, Mapping):
                items = [
                    (f"{name}.{k}", v if type(v) is np.ndarray else host_array(v))
                    for k, v in value.items()
                ]
            else:
                items = [(name, host_array(value))]
        except Exception:
            _LOG.exception(
                "stagelog: %s: tensor %r of %s not logged",
                self.loggers[li].identity.model,
                name,
                self.request_ids[ri],
            )
            return
        for full_name, arr in items:
            key = (li, direction, full_name, arr.dtype)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ([], [])
            group[0].append(ri)
            group[1].append(arr)

    def _tensor_group(
        self, columns: _TensorColumns, key: tuple[Any, ...], ris: list[int], arrays: list[Any]
    ) -> None:
        li, direction, name, dtype = key
        logger = self.loggers[li]
        policy = logger.policy
        m = len(arrays)
        shapes = list(map(_SHAPE, arrays))
        sizes = np.fromiter(map(_SIZE, arrays), np.int64, m)
        numeric = dtype.kind in "biuf"
        sources = getattr(logger, "arrow_sources", None) or {}
        source = sources.get(name) if direction == "input" else None
        # digests only at the ends of an arrow: refs, and outputs some stage refers to
        needs_digest = source is not None or (
            direction == "output" and name in (getattr(logger, "arrow_outputs", None) or ())
        )
        if numeric:
            if m > 1:  # C-order bytes of each, joined: several times cheaper than concatenate
                flat = np.frombuffer(b"".join([a.tobytes() for a in arrays]), dtype=dtype)
            else:
                flat = arrays[0].ravel()
            strings = None
        else:
            objects = np.concatenate(arrays, axis=None) if m > 1 else arrays[0].ravel()
            if objects.dtype != object:
                objects = objects.astype(object)
            strings = _binary(objects)
            flat = None
        group = _Group(ris, direction, name, BYTES_DTYPE if not numeric else dtype.name, shapes)
        group.sizes = sizes
        if policy.summarizes:
            group.summary = _summaries(flat, strings, sizes)
        else:
            if needs_digest:
                group.digests = (
                    _numeric_digests(flat, sizes) if numeric else _string_digests(strings, sizes)
                )
            if source is not None:
                group.source_stage, group.source_name = source
            elif numeric and dtype.kind == "f" and dtype.itemsize <= 4:
                group.f32 = flat.astype(np.float32, copy=False)
            elif numeric:
                group.f64 = flat.astype(np.float64, copy=False)
            else:
                group.strings = strings
        group.stage = logger.identity.model
        group.version = logger.identity.model_version
        group.policy = policy.mode
        columns.add(group)

    # predictions -----------------------------------------------------------------------------

    def predictions(self, class_names: tuple[str, ...] | None) -> pa.Table | None:
        groups: dict[tuple[int, str, int], tuple[list[int], list[np.ndarray], list[Any]]] = {}
        idx = self.logger_idx.tolist()
        for ri, rec in enumerate(self.records):
            if not rec.preds:
                continue
            for model, probs, decisions in rec.preds:
                try:
                    if type(probs) is not np.ndarray or probs.ndim != 2:
                        probs = np.atleast_2d(host_array(probs))
                        if probs.ndim != 2:
                            raise SpoolError(f"probabilities of shape {probs.shape}")
                    if decisions is not None:
                        decisions = host_array(decisions).ravel()
                        if len(decisions) != probs.shape[0]:
                            raise SpoolError(
                                f"{len(decisions)} decisions for {probs.shape[0]} prediction rows"
                            )
                except Exception:
                    _LOG.exception(
                        "stagelog: %s: predictions of %s not logged",
                        rec.logger.identity.model,
                        rec.request_id,
                    )
                    continue
                key = (idx[ri], model, probs.shape[1])
                group = groups.get(key)
                if group is None:
                    group = groups[key] = ([], [], [])
                group[0].append(ri)
                group[1].append(probs)
                group[2].append(decisions)
        if not groups:
            return None
        parts = []
        for key, (ris, probs, decisions) in groups.items():
            try:
                parts.append(self._prediction_group(key, ris, probs, decisions, class_names))
            except Exception:
                _LOG.exception("stagelog: %d predictions of %s not logged", len(ris), key[1])
        if not parts:
            return None
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def _prediction_group(
        self,
        key: tuple[int, str, int],
        ris: list[int],
        probs: list[np.ndarray],
        decisions: list[Any],
        class_names: tuple[str, ...] | None,
    ) -> pa.Table:
        li, model, k = key
        logger = self.loggers[li]
        ident = logger.identity
        if class_names is None:
            class_names = tuple(getattr(logger, "class_names", ()) or ())
        counts = np.fromiter((p.shape[0] for p in probs), np.int64, len(probs))
        p = np.concatenate(probs, axis=0) if len(probs) > 1 else probs[0]
        p = np.ascontiguousarray(p, dtype=np.float32)
        total = p.shape[0]
        rec_idx = pa.array(np.repeat(np.asarray(ris, dtype=np.int64), counts))
        starts = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        row = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
        names = class_labels(k, class_names)
        offsets = pa.array(np.arange(total + 1, dtype=np.int32) * k)
        flat = pa.array(p.ravel(), type=pa.float32())
        if k:  # the class names are the dictionary: keys and argmax are its indices
            predicted = _lc_codes(list(names), p.argmax(axis=1).astype(np.int32))
            keys = _lc_codes(list(names), np.tile(np.arange(k, dtype=np.int32), total))
        else:
            predicted = _lc_repeat("", total)
            keys = _lc_codes([], _EMPTY_I32)
        if all(d is None for d in decisions):
            decision = _lc_repeat("", total)
        else:
            chunks = [
                np.full(c, "", dtype=object) if d is None else d
                for d, c in zip(decisions, counts.tolist(), strict=True)
            ]
            decision = _text(np.concatenate(chunks)).dictionary_encode()
        return pa.Table.from_arrays(
            [
                self._ts.take(rec_idx),
                self._rid.take(rec_idx),
                pa.array(row, type=pa.uint32()),
                _lc_repeat(ident.model, total),
                _lc_repeat(model, total),
                _lc_repeat(ident.model_version, total),
                pa.MapArray.from_arrays(offsets, keys, flat),
                pa.ListArray.from_arrays(offsets, flat),
                predicted,
                decision,
            ],
            schema=PREDICTIONS,
        )


class _Group:
    """The tensors of one (logger, direction, name, dtype) in one flush, column parts."""

    __slots__ = (
        "ris",
        "direction",
        "name",
        "dtype",
        "shapes",
        "sizes",
        "f64",
        "f32",
        "strings",
        "summary",
        "digests",
        "source_stage",
        "source_name",
        "stage",
        "version",
        "policy",
    )

    def __init__(
        self, ris: list[int], direction: str, name: str, dtype: str, shapes: list[tuple]
    ) -> None:
        self.ris = ris
        self.direction = direction
        self.name = name
        self.dtype = dtype
        self.shapes = shapes
        self.sizes: np.ndarray = _EMPTY_I32
        self.f64: np.ndarray | None = None
        self.f32: np.ndarray | None = None
        self.strings: pa.Array | None = None
        self.summary: tuple[np.ndarray, pa.Array, pa.Array] | None = None
        self.digests: list[str] | None = None
        self.source_stage = ""
        self.source_name = ""
        self.stage = ""
        self.version = ""
        self.policy = "full"


class _TensorColumns:
    """Groups of one flush, assembled into the stage_tensors table."""

    def __init__(self) -> None:
        self.groups: list[_Group] = []
        self.m = 0

    def add(self, group: _Group) -> None:
        self.groups.append(group)
        self.m += len(group.ris)

    def table(self, flush: _Flush) -> pa.Table:
        groups, m = self.groups, self.m
        counts = np.fromiter((len(g.ris) for g in groups), np.int64, len(groups))
        group_idx = np.repeat(np.arange(len(groups), dtype=np.int32), counts)
        rec_idx = pa.array(
            np.fromiter(itertools.chain.from_iterable(g.ris for g in groups), np.int64, m)
        )

        def per_group(attr: str) -> pa.Array:
            return _lc_codes([getattr(g, attr) for g in groups], group_idx)

        shapes = list(itertools.chain.from_iterable(g.shapes for g in groups))
        shape = _list_array(
            np.fromiter(map(len, shapes), np.int64, m),
            pa.array(
                np.fromiter(itertools.chain.from_iterable(shapes), np.uint32), type=pa.uint32()
            ),
        )
        zero = [np.zeros(len(g.ris), dtype=np.int64) for g in groups]
        arrays = [
            flush._ts.take(rec_idx),
            flush._rid.take(rec_idx),
            per_group("stage"),
            per_group("version"),
            per_group("direction"),
            per_group("name"),
            per_group("dtype"),
            shape,
            self._values(groups, zero, "f64", pa.float64()),
            self._values(groups, zero, "f32", pa.float32()),
            self._values(groups, zero, "strings", _BIN),
            self._summary(groups, zero),
            per_group("policy"),
            pa.array(
                list(
                    itertools.chain.from_iterable(
                        g.digests if g.digests is not None else [""] * len(g.ris) for g in groups
                    )
                ),
                type=_STR,
            ),
            per_group("source_stage"),
            per_group("source_name"),
        ]
        return pa.Table.from_arrays(arrays, schema=STAGE_TENSORS)

    @staticmethod
    def _values(
        groups: list[_Group], zero: list[np.ndarray], attr: str, typ: pa.DataType
    ) -> pa.Array:
        if all(getattr(g, attr) is None for g in groups):  # e.g. no float64 tensor this flush
            return pa.ListArray.from_arrays(
                _no_offsets(sum(map(len, zero))), pa.array([], type=typ))
        lens, chunks = [], []
        for g, z in zip(groups, zero, strict=True):
            values = getattr(g, attr)
            if values is None:
                lens.append(z)
                continue
            lens.append(g.sizes)
            chunks.append(values if isinstance(values, pa.Array) else pa.array(values, type=typ))
        flat = pa.concat_arrays(chunks) if len(chunks) > 1 else (chunks[0] if chunks else None)
        if flat is None:
            flat = pa.array([], type=typ)
        return _list_array(np.concatenate(lens), flat)

    @staticmethod
    def _summary(groups: list[_Group], zero: list[np.ndarray]) -> pa.Array:
        if all(g.summary is None for g in groups):  # the usual flush: no policy summary
            return pa.MapArray.from_arrays(_no_offsets(sum(map(len, zero))), _NO_LC, _NO_F64)
        lens, keys, vals = [], [], []
        for g, z in zip(groups, zero, strict=True):
            if g.summary is None:
                lens.append(z)
                continue
            group_lens, group_keys, group_vals = g.summary
            lens.append(group_lens)
            keys.append(group_keys)
            vals.append(group_vals)
        all_lens = np.concatenate(lens)
        offsets = np.zeros(len(all_lens) + 1, dtype=np.int32)
        np.cumsum(all_lens, out=offsets[1:])
        key_arr = pa.concat_arrays(keys) if keys else _NO_LC
        val_arr = pa.concat_arrays(vals) if vals else pa.array([], type=pa.float64())
        return pa.MapArray.from_arrays(pa.array(offsets), key_arr, val_arr)


# -- vector helpers ----------------------------------------------------------------------------


def _lc_repeat(value: str, n: int) -> pa.Array:
    """A dictionary column of ``n`` times ``value``: one dictionary entry, ``n`` zeros."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], type=_STR)
    )


def _lc_codes(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """The dictionary column whose row ``i`` is ``values[index[i]]`` (``values`` may repeat)."""
    unique = list(dict.fromkeys(values))
    if len(unique) == 1:
        return _lc_repeat(unique[0], len(index))
    if len(unique) == len(values):
        codes = np.asarray(index, dtype=np.int32)
    else:  # a dictionary holds each value once: the store maps its entries one to one
        pos = {v: i for i, v in enumerate(unique)}
        codes = np.fromiter(map(pos.__getitem__, values), np.int32, len(values))[index]
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(unique, type=_STR))


def _lc_values(values: Sequence[str]) -> pa.Array:
    """A dictionary column of per-row strings (``status``, ``device``): usually one value."""
    if values.count(values[0]) == len(values):
        return _lc_repeat(values[0], len(values))
    return pa.array(values, type=_STR).dictionary_encode()


def _no_offsets(n: int) -> pa.Array:
    """The offsets of ``n`` empty lists (or maps)."""
    return pa.array(np.zeros(n + 1, dtype=np.int32))


def _list_array(lens: np.ndarray, flat: pa.Array) -> pa.Array:
    offsets = np.zeros(len(lens) + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


def _binary(objects: np.ndarray) -> pa.Array:
    """Bytes (str as UTF-8) in one C loop; other objects as their text, value by value."""
    try:
        return pa.array(objects, type=_BIN)
    except (pa.ArrowTypeError, pa.ArrowInvalid, TypeError):
        return pa.array([_as_bytes(v) for v in objects.tolist()], type=_BIN)


def _text(objects: np.ndarray) -> pa.Array:
    """A string column from str/bytes objects (invalid UTF-8 replaced)."""
    try:
        return pa.array(objects, type=_STR)
    except (pa.ArrowTypeError, pa.ArrowInvalid, TypeError):
        return pa.array(
            [_as_bytes(v).decode("utf-8", "replace") for v in objects.tolist()], type=_STR
        )


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview, np.bytes_)):
        return bytes(value)
    return str(value).encode("utf-8")


def _bounds(sizes: np.ndarray) -> tuple[list[int], list[int]]:
    ends = np.cumsum(sizes)
    return (ends - sizes).tolist(), ends.tolist()


def _numeric_digests(flat: np.ndarray, sizes: np.ndarray) -> list[str]:
    view = memoryview(np.ascontiguousarray(flat)).cast("B")
    item = flat.dtype.itemsize
    starts, ends = _bounds(sizes * item)
    sha = hashlib.sha256
    return [sha(view[s:e]).hexdigest()[:32] for s, e in zip(starts, ends, strict=True)]


def _string_digests(strings: pa.Array, sizes: np.ndarray) -> list[str]:
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32, count=n + 1 + strings.offset)
    offsets = offsets[strings.offset :]
    data = strings.buffers()[2]
    data_view = memoryview(data) if data is not None else memoryview(b"")
    lengths = memoryview(np.diff(offsets).astype("<u4")).cast("B")
    starts, ends = _bounds(sizes)
    byte_at = offsets.tolist()
    sha = hashlib.sha256
    out = []
    for s, e in zip(starts, ends, strict=True):
        h = sha(lengths[4 * s : 4 * e])
        h.update(data_view[byte_at[s] : byte_at[e]])
        out.append(h.hexdigest()[:32])
    return out


_NUM_KEYS = ("count", "nan_count", "min", "max", "mean")
_STR_KEYS = ("count", "nan_count", "len_min", "len_max", "len_mean")


def _summaries(
    flat: np.ndarray | None, strings: pa.Array | None, sizes: np.ndarray
) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Per tensor: count, nan_count, min, max, mean (of byte lengths for strings), vectorized.

    An empty tensor keeps only ``count``; one whose every value is NaN drops min/max/mean.
    """
    m = len(sizes)
    if strings is not None:
        n = len(strings)
        offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32, count=n + 1 + strings.offset)
        data = np.diff(offsets[strings.offset :]).astype(np.float64)
        names = _STR_KEYS
        nan = None
    else:
        data = flat.astype(np.float64, copy=False)
        names = _NUM_KEYS
        nan = np.isnan(data) if flat.dtype.kind == "f" else None
    table = np.zeros((m, 5), dtype=np.float64)
    table[:, 0] = sizes
    mask = np.zeros((m, 5), dtype=bool)
    mask[:, 0] = True
    nonempty = sizes > 0
    mask[:, 1] = nonempty
    if nonempty.any():
        starts = (np.cumsum(sizes) - sizes)[nonempty]
        if nan is not None:
            n_nan = np.add.reduceat(nan.astype(np.int64), starts)
            lo = np.minimum.reduceat(np.where(nan, np.inf, data), starts)
            hi = np.maximum.reduceat(np.where(nan, -np.inf, data), starts)
            total = np.add.reduceat(np.where(nan, 0.0, data), starts)
        else:
            n_nan = np.zeros(len(starts), dtype=np.int64)
            lo = np.minimum.reduceat(data, starts)
            hi = np.maximum.reduceat(data, starts)
            total = np.add.reduceat(data, starts)
        present = sizes[nonempty] - n_nan
        table[nonempty, 1] = n_nan
        table[nonempty, 2] = lo
        table[nonempty, 3] = hi
        with np.errstate(invalid="ignore", divide="ignore"):
            table[nonempty, 4] = total / present
        has = np.zeros(m, dtype=bool)
        has[nonempty] = present > 0
        mask[:, 2:] = has[:, None]
    lens = mask.sum(axis=1)
    codes = np.broadcast_to(np.arange(5, dtype=np.int32), (m, 5))[mask]
    keys = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, type=_STR))
    vals = pa.array(table[mask], type=pa.float64())
    return lens, keys, vals


def _nullable(values: list[Any], typ: pa.DataType, kind: type) -> pa.Array:
    """A column that may hold None (NULL); a value that is not a ``kind`` becomes NULL."""
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    out = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        try:
            out.append(kind(value))
        except (TypeError, ValueError):
            _LOG.warning("stagelog: %r is not a %s; stored as NULL", value, kind.__name__)
            out.append(None)
    return pa.array(out, type=typ)


def _model_versions(loads: list[ModelLoad]) -> pa.Table:
    rows = [
        (
            load.ts_ns // 1000,
            load.identity.model,
            load.identity.model_version,
            load.identity.artifact_sha256,
            load.identity.triton_version,
            load.model_card,
            load.identity.host,
            load.identity.pid,
            load.identity.instance,
            load.device,
            list((load.artifacts or {}).items()),
            load.model_config,
        )
        for load in loads
    ]
    return _from_rows(rows, MODEL_VERSIONS)


def _logging_policy(notices: list[PolicyNotice]) -> pa.Table:
    rows = [
        (
            notice.ts_ns // 1000,
            notice.identity.model,
            notice.identity.model,
            notice.policy,
            notice.sample_rate,
            notice.reason,
            notice.identity.host,
            notice.identity.pid,
            notice.scope,
            notice.dropped,
        )
        for notice in notices
    ]
    return _from_rows(rows, LOGGING_POLICY)


def _from_rows(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    columns = zip(*rows, strict=True)
    return pa.Table.from_arrays(
        [pa.array(list(c), type=f.type) for c, f in zip(columns, schema, strict=True)],
        schema=schema,
    )
