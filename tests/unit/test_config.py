"""Settings resolve in config.load(): explicit argument, then STAGELOG_* variable, then default."""

from __future__ import annotations

import pytest

from logging_backend import config
from logging_backend.errors import ConfigError

NEW = {  # field: (variable, default, a value to set, what it parses to)
    "http": (config.HTTP, False, "on", True),
    "supervise": (config.SUPERVISE, True, "off", False),
    "probe_ms": (config.PROBE_MS, 5000, "1000", 1000),
    "hang_ms": (config.HANG_MS, 10000, "20000", 20000),
    "triton_metrics_ms": (config.TRITON_METRICS_MS, 5000, "250", 250),
    "alert_rules": (config.ALERT_RULES, "", "/etc/rules.toml", "/etc/rules.toml"),
    "alert_interval_ms": (config.ALERT_INTERVAL_MS, 60000, "0", 0),
    "query_password": (config.QUERY_PASSWORD, "", "s3cret-pw", "s3cret-pw"),
    "collect_offset_ms": (config.COLLECT_OFFSET_MS, 500, "250", 250),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for variable, *_ in NEW.values():
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize("field", sorted(NEW))
def test_defaults_environment_and_explicit_arguments(field, monkeypatch, tmp_path):
    variable, default, raw, parsed = NEW[field]
    assert getattr(config.load(home=tmp_path), field) == default
    monkeypatch.setenv(variable, raw)
    assert getattr(config.load(home=tmp_path), field) == parsed
    assert getattr(config.load(home=tmp_path, **{field: default}), field) == default


@pytest.mark.parametrize(("variable", "value", "message"), [
    (config.PROBE_MS, "fast", "STAGELOG_PROBE_MS='fast' is not an integer"),
    (config.PROBE_MS, "50", "STAGELOG_PROBE_MS='50' must be >= 100"),
    (config.HANG_MS, "500", "STAGELOG_HANG_MS='500' must be >= 2000"),
    (config.TRITON_METRICS_MS, "10", "STAGELOG_TRITON_METRICS_MS='10' must be >= 100"),
    (config.ALERT_INTERVAL_MS, "-1", "STAGELOG_ALERT_INTERVAL_MS='-1' must be >= 0"),
    (config.COLLECT_OFFSET_MS, "-5", "STAGELOG_COLLECT_OFFSET_MS='-5' must be >= 0"),
    (config.HTTP, "maybe", "STAGELOG_HTTP='maybe' is not one of on/off"),
    (config.SUPERVISE, "sometimes", "STAGELOG_SUPERVISE='sometimes' is not one of on/off"),
])
def test_bad_values_name_the_variable(variable, value, message, monkeypatch, tmp_path):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        config.load(home=tmp_path)


def test_the_query_password_is_never_in_repr(monkeypatch, tmp_path):
    monkeypatch.setenv(config.QUERY_PASSWORD, "s3cret-pw")
    settings = config.load(home=tmp_path)
    assert settings.query_password == "s3cret-pw"
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings)
    assert "query_password=" not in repr(settings)
