"""Settings resolve in one place: explicit argument, then STAGELOG_* variable, then default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from logging_backend.errors import ConfigError

# Each variable with its default; docs/architecture.md lists them for users.
HOME = "STAGELOG_HOME"  # default: ./.stagelog
DSN = "STAGELOG_DSN"  # default: chdb://<home>/clickhouse
GRPC_PORT = "STAGELOG_GRPC_PORT"  # default: 8001
HTTP_PORT = "STAGELOG_HTTP_PORT"  # default: 8000
METRICS_PORT = "STAGELOG_METRICS_PORT"  # default: 8002
TRITONSERVER = "STAGELOG_TRITONSERVER"  # default: PATH, then the nvidia-pytriton wheel
LOGGING = "STAGELOG_LOGGING"  # default: on
FLUSH_MS = "STAGELOG_FLUSH_MS"  # default: 1000 (sooner when a batch of 1,000 records fills)
# A stage process's garbage collector gets room for the records its buffer holds (capture/batch)
GC_ROOM = "STAGELOG_GC_ROOM"  # default: on
SPOOL_BUDGET_MB = "STAGELOG_SPOOL_BUDGET_MB"  # default: 1024
# Free space the spool leaves on its filesystem (the store and the collector's state need it);
# the disk budget is min(SPOOL_BUDGET_MB, spool + free - SPOOL_MIN_FREE_MB).
SPOOL_MIN_FREE_MB = "STAGELOG_SPOOL_MIN_FREE_MB"  # default: 256
COLLECT_INTERVAL_MS = "STAGELOG_COLLECT_INTERVAL_MS"  # default: 2000 (collector's spool poll)
# how long after each tick of its period the collector polls (the stages flush on the tick)
COLLECT_OFFSET_MS = "STAGELOG_COLLECT_OFFSET_MS"  # default: 500
SPOOL_FORMAT = "STAGELOG_SPOOL_FORMAT"  # default: v2 (one file per flush); v1: one per table
DEVICE = "STAGELOG_DEVICE"  # default: auto
TRITON_VERSION = "STAGELOG_TRITON_VERSION"  # set by the launcher; default: "" (unknown)
CLUSTER = "STAGELOG_CLUSTER"  # default: unset (one server, migrations as written)
HTTP = "STAGELOG_HTTP"  # default: off (Triton's HTTP/REST endpoint; gRPC is the interface)
SUPERVISE = "STAGELOG_SUPERVISE"  # default: on (`up` starts the supervisor)
PROBE_MS = "STAGELOG_PROBE_MS"  # default: 5000 (supervisor: period of the stage probes)
# A tritonserver that answers no gRPC liveness check for this long is hung: killed, restarted.
HANG_MS = "STAGELOG_HANG_MS"  # default: 10000 (supervisor; at least 2000)
TRITON_METRICS_MS = "STAGELOG_TRITON_METRICS_MS"  # default: 5000 (collector: Triton metrics)
REFUSALS = "STAGELOG_REFUSALS"  # default: on (record requests Triton refuses, refusal_log.c)
REFUSAL_LOG = "STAGELOG_REFUSAL_LOG"  # set by the launcher: <home>/logs/refusals.log
REFUSAL_LOG_MAX_BYTES = "STAGELOG_REFUSAL_LOG_MAX_BYTES"  # default: 16777216 (then .1)
QUERY_USER = "STAGELOG_QUERY_USER"  # default: stagelog (the read-only user of the query door)
QUERY_PASSWORD = "STAGELOG_QUERY_PASSWORD"  # default: made at first `up`, $HOME/reader.password
QUERY_PORT = "STAGELOG_QUERY_PORT"  # default: 0 (a free port; run/collector.json names it)
QUERY_TIMEOUT_S = "STAGELOG_QUERY_TIMEOUT_S"  # default: 60 (max_execution_time of a reader)
QUERY_MAX_RESULT_MB = "STAGELOG_QUERY_MAX_RESULT_MB"  # default: 1024 (max_result_bytes)
QUERY_MAX_MEMORY_MB = "STAGELOG_QUERY_MAX_MEMORY_MB"  # default: 2048 (max_memory_usage)
ALERT_RULES = "STAGELOG_ALERT_RULES"  # default: logging_backend/insights/alert_rules.toml
ALERT_INTERVAL_MS = "STAGELOG_ALERT_INTERVAL_MS"  # default: 60000 (as Prometheus evaluates)
ROLLUP_INTERVAL_MS = "STAGELOG_ROLLUP_INTERVAL_MS"  # default: 20000 (hourly rollups' batches)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _raw(name: str, explicit: object | None) -> str | None:
    if explicit is not None:
        return str(explicit)
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def get_str(name: str, default: str, explicit: object | None = None) -> str:
    """Return a string setting."""
    value = _raw(name, explicit)
    return default if value is None else value


def get_int(name: str, default: int, explicit: object | None = None, minimum: int = 0) -> int:
    """Return an integer setting, failing with a message naming the variable."""
    value = _raw(name, explicit)
    if value is None:
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None
    if parsed < minimum:
        raise ConfigError(f"{name}={value!r} must be >= {minimum}")
    return parsed


def get_bool(name: str, default: bool, explicit: object | None = None) -> bool:
    """Return an on/off setting (on/off, true/false, 1/0, yes/no)."""
    if isinstance(explicit, bool):
        return explicit
    value = _raw(name, explicit)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "on", "true", "yes"):
        return True
    if lowered in ("0", "off", "false", "no"):
        return False
    raise ConfigError(f"{name}={value!r} is not one of on/off, true/false, 1/0, yes/no")


def get_choice(
    name: str, default: str, choices: tuple[str, ...], explicit: object | None = None
) -> str:
    """Return a setting that must be one of ``choices``."""
    value = get_str(name, default, explicit).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Settings:
    """Every setting stagelog reads, resolved once."""

    home: Path
    dsn: str
    grpc_port: int
    http_port: int
    metrics_port: int
    logging: bool
    flush_ms: int
    spool_budget_mb: int
    device: str
    collect_interval_ms: int = 2000
    collect_offset_ms: int = 500
    spool_format: str = "v2"
    triton_version: str = ""
    tritonserver: str = ""
    cluster: str = ""
    query_user: str = "stagelog"
    query_port: int = 0
    query_timeout_s: int = 60
    query_max_result_mb: int = 1024
    query_max_memory_mb: int = 2048
    spool_min_free_mb: int = 256
    rollup_interval_ms: int = 20_000  # 0: this process makes no rollups (another one does)
    refusals: bool = True  # record requests Triton refuses (stack/refusal_log.c)
    http: bool = False
    supervise: bool = True
    probe_ms: int = 5000
    hang_ms: int = 10000
    triton_metrics_ms: int = 5000
    alert_rules: str = ""  # "" = the shipped rule set (insights/alert_rules.toml)
    alert_interval_ms: int = 60_000
    gc_room: bool = True  # raise a stage process's gc threshold by its buffer's objects
    # A secret: kept out of repr (logs, tracebacks, status); "" = the home's password file.
    query_password: str = field(default="", repr=False)

    @property
    def spool_dir(self) -> Path:
        """Where stage processes write segments and the collector reads them."""
        return self.home / "spool"

    @property
    def logs_dir(self) -> Path:
        """Server and collector logs."""
        return self.home / "logs"

    @property
    def pids_dir(self) -> Path:
        """One pid file per process the launcher started."""
        return self.home / "pids"


def load(
    home: str | Path | None = None,
    dsn: str | None = None,
    grpc_port: int | None = None,
    http_port: int | None = None,
    metrics_port: int | None = None,
    logging: bool | None = None,
    flush_ms: int | None = None,
    spool_budget_mb: int | None = None,
    device: str | None = None,
    spool_min_free_mb: int | None = None,
    collect_interval_ms: int | None = None,
    collect_offset_ms: int | None = None,
    spool_format: str | None = None,
    triton_version: str | None = None,
    tritonserver: str | None = None,
    cluster: str | None = None,
    query_user: str | None = None,
    query_port: int | None = None,
    rollup_interval_ms: int | None = None,
    refusals: bool | None = None,
    http: bool | None = None,
    supervise: bool | None = None,
    probe_ms: int | None = None,
    hang_ms: int | None = None,
    triton_metrics_ms: int | None = None,
    alert_rules: str | None = None,
    alert_interval_ms: int | None = None,
    query_password: str | None = None,
) -> Settings:
    """Resolve settings: explicit argument, then environment, then default."""
    home_path = Path(get_str(HOME, ".stagelog", home)).expanduser().resolve()
    return Settings(
        home=home_path,
        dsn=get_str(DSN, f"chdb://{home_path / 'clickhouse'}", dsn),
        grpc_port=get_int(GRPC_PORT, 8001, grpc_port, minimum=1),
        http_port=get_int(HTTP_PORT, 8000, http_port, minimum=1),
        metrics_port=get_int(METRICS_PORT, 8002, metrics_port, minimum=1),
        logging=get_bool(LOGGING, True, logging),
        flush_ms=get_int(FLUSH_MS, 1000, flush_ms, minimum=1),
        spool_budget_mb=get_int(SPOOL_BUDGET_MB, 1024, spool_budget_mb, minimum=1),
        device=get_choice(DEVICE, "auto", ("auto", "cpu", "gpu"), device),
        spool_min_free_mb=get_int(SPOOL_MIN_FREE_MB, 256, spool_min_free_mb, minimum=0),
        collect_interval_ms=get_int(COLLECT_INTERVAL_MS, 2000, collect_interval_ms, minimum=1),
        collect_offset_ms=get_int(COLLECT_OFFSET_MS, 500, collect_offset_ms, minimum=0),
        spool_format=get_choice(SPOOL_FORMAT, "v2", ("v1", "v2"), spool_format),
        triton_version=get_str(TRITON_VERSION, "", triton_version),
        tritonserver=get_str(TRITONSERVER, "", tritonserver),
        cluster=get_str(CLUSTER, "", cluster).strip(),
        query_user=get_str(QUERY_USER, "stagelog", query_user),
        query_port=get_int(QUERY_PORT, 0, query_port),
        query_timeout_s=get_int(QUERY_TIMEOUT_S, 60, minimum=1),
        query_max_result_mb=get_int(QUERY_MAX_RESULT_MB, 1024, minimum=1),
        query_max_memory_mb=get_int(QUERY_MAX_MEMORY_MB, 2048, minimum=64),
        rollup_interval_ms=get_int(ROLLUP_INTERVAL_MS, 20_000, rollup_interval_ms, minimum=0),
        refusals=get_bool(REFUSALS, True, refusals),
        http=get_bool(HTTP, False, http),
        supervise=get_bool(SUPERVISE, True, supervise),
        probe_ms=get_int(PROBE_MS, 5000, probe_ms, minimum=100),
        hang_ms=get_int(HANG_MS, 10000, hang_ms, minimum=2000),
        triton_metrics_ms=get_int(TRITON_METRICS_MS, 5000, triton_metrics_ms, minimum=100),
        alert_rules=get_str(ALERT_RULES, "", alert_rules),
        alert_interval_ms=get_int(ALERT_INTERVAL_MS, 60_000, alert_interval_ms),
        query_password=get_str(QUERY_PASSWORD, "", query_password),
        gc_room=get_bool(GC_ROOM, True),
    )
