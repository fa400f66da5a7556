"""The door's protocol pieces without a server: errors, encodings, settings, credentials."""

from __future__ import annotations

import gzip

import lz4.frame
import pytest
from backports import zstd

from logging_backend import config
from logging_backend.collector import endpoint
from logging_backend.errors import ConfigError
from logging_backend.store import access, guard
from logging_backend.store.sessions import ReaderLimits, SettingRefused, reader_settings


def test_engine_messages_become_clickhouse_errors_with_their_http_status():
    nested = ("Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'readonly' "
              "setting in readonly mode. (READONLY) (version 26.9.2.1). (READONLY)")
    error = endpoint.ClickHouseHTTPError.from_exception(RuntimeError(nested))
    assert (error.code, error.name, error.status) == (164, "READONLY", 500)
    assert error.body() == (b"Code: 164. DB::Exception: Cannot modify 'readonly' setting in "
                            b"readonly mode. (READONLY) (version 26.9.2.1)\n")
    unknown = endpoint.ClickHouseHTTPError.from_exception(RuntimeError(
        "Code: 60. DB::Exception: Unknown table expression identifier 'stagelog.nope'. "
        "(UNKNOWN_TABLE)"))
    assert (unknown.code, unknown.status) == (60, 404)
    refused = endpoint.ClickHouseHTTPError.from_exception(guard.Refused("no", 497))
    assert refused.status == 403 and refused.name == "ACCESS_DENIED"
    auth = endpoint.auth_failed(None)
    assert (auth.code, auth.status) == (516, 403) and b"default: Authentication failed" in \
        auth.body()
    assert endpoint.ClickHouseHTTPError(159, "TIMEOUT_EXCEEDED", "t").status == 408


@pytest.mark.parametrize("name,decode", [
    ("gzip", gzip.decompress), ("zstd", zstd.decompress), ("lz4", lz4.frame.decompress),
    ("deflate", __import__("zlib").decompress), (None, lambda b: b),
])
def test_streaming_encoders_round_trip(name, decode):
    encoder = endpoint._Encoder(name)
    data = b"".join(encoder.feed(b"stagelog %d\n" % i) for i in range(1000)) + encoder.finish()
    assert decode(data) == b"".join(b"stagelog %d\n" % i for i in range(1000))
    if name:
        assert endpoint.decode_body(data, name) == decode(data)


def test_accept_encoding_and_content_types():
    assert endpoint.choose_encoding("br, zstd;q=0.9, gzip") == "zstd"
    assert endpoint.choose_encoding("identity") is None and endpoint.choose_encoding(None) is None
    assert endpoint.content_type("TabSeparatedWithNames").startswith("text/tab-separated")
    assert endpoint.content_type("JSONEachRow").startswith("application/json")
    assert endpoint.content_type("Native") == "application/octet-stream"
    with pytest.raises(endpoint.ClickHouseHTTPError, match="Unknown compression"):
        endpoint.decode_body(b"x", "snappy")


def test_readers_may_lower_limits_and_choose_formats_only():
    limits = ReaderLimits(max_execution_time_s=60, max_result_bytes=1 << 20)
    chosen = reader_settings({"max_execution_time": "5", "output_format_json_quote_64bit_"
                              "integers": "0"}, limits)
    assert chosen["max_execution_time"] == 5 and chosen["result_overflow_mode"] == "throw"
    assert chosen["output_format_json_quote_64bit_integers"] == "0"
    assert reader_settings({"max_execution_time": "60"}, limits)["max_execution_time"] == 60
    for name, value in (("max_execution_time", "600"), ("max_result_bytes", "0"),
                        ("readonly", "0"), ("allow_ddl", "1"), ("max_threads", "64"),
                        ("bad name", "1")):
        with pytest.raises(SettingRefused):
            reader_settings({name: value}, limits)


def test_credentials_are_made_once_private_and_never_printed(tmp_path, monkeypatch):
    monkeypatch.delenv(config.QUERY_PASSWORD, raising=False)
    settings = config.load(home=tmp_path / "home")
    with pytest.raises(ConfigError, match="stagelog up"):
        access.load(settings)
    made = access.ensure(settings)
    assert access.ensure(settings) == made and access.load(settings) == made
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    assert access.password_file(settings).stat().st_mode & 0o777 == 0o600
    assert made.password not in repr(made) and made.user == "stagelog"
    assert made.matches("stagelog", made.password) and not made.matches("stagelog", "x")
    assert not made.matches(None, None)
    monkeypatch.setenv(config.QUERY_PASSWORD, "from-env")  # resolved in Settings, once
    from_env = config.load(home=tmp_path / "home")
    assert access.load(from_env).password == "from-env"
    assert access.ensure(from_env).password == "from-env"
    assert "from-env" not in repr(from_env)
