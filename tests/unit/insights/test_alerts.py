"""Alert rules: parsing, thresholds, baselines and transitions, on the real embedded engine."""

from datetime import datetime, timedelta, timezone

import pytest

from logging_backend import config, store
from logging_backend.insights import alerts, metrics
from logging_backend.insights.alerts import AlertRuleError, Evaluator, Rule, rule_from_mapping

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SPOOL_DROP_COLS = ["ts", "host", "target_table", "segments", "rows", "bytes", "reason", "detail"]
DROPS = """
SELECT sum(rows) AS value, count() AS n FROM stagelog.spool_drops
WHERE ts >= {t_from:DateTime64(6, 'UTC')} AND ts < {t_to:DateTime64(6, 'UTC')}
"""


@pytest.fixture()
def query(tmp_path):
    store.close_all()
    client = store.connect(f"chdb://{tmp_path / 'ch'}")
    store.migrate(client)
    yield metrics.client_query(client)
    store.close_all()


def drop(query, when, rows):
    query("INSERT INTO stagelog.spool_drops (ts, host, target_table, segments, rows, bytes, "
          "reason, detail) SELECT {ts:DateTime64(6, 'UTC')}, 'h', 'stage_tensors', 1, "
          "{rows:UInt64}, 10, 'budget', ''",
          {"ts": when.strftime("%Y-%m-%d %H:%M:%S.%f"), "rows": rows})


def test_the_shipped_rules_parse_and_run_on_an_empty_store(query):
    rules = alerts.load_rules(alerts.DEFAULT_RULES)
    names = {r.name for r in rules}
    assert {"accuracy_drop", "log_loss_high", "feature_drift", "error_rate", "p99_latency",
            "member_disagreement", "shipping_lag", "dropped_rows"} <= names
    assert any(r.baseline for r in rules) and any(r.above is not None for r in rules)
    for rule in rules:
        found = alerts.evaluate(query, rule, NOW)  # every query is valid SQL on the schema
        assert not found.firing and not found.value, (rule.name, found)
    assert Evaluator(query, rules).run_once(NOW) == []


def test_a_threshold_rule_fires_once_and_resolves_once(query):
    rule = Rule(name="drops", sql=DROPS, window_s=60, above=0, severity="critical")
    evaluator = Evaluator(query, [rule])
    assert evaluator.run_once(NOW) == []
    drop(query, NOW - timedelta(seconds=10), 42)
    (name, state, found), = evaluator.run_once(NOW)
    assert (name, state, found.value, found.threshold) == ("drops", "firing", 42.0, 0.0)
    assert evaluator.run_once(NOW + timedelta(seconds=5)) == []  # still firing: no new row
    # a restarted evaluator reads the state back and does not fire again
    assert Evaluator(query, [rule]).run_once(NOW + timedelta(seconds=6)) == []
    (_, state, found), = evaluator.run_once(NOW + timedelta(seconds=120))
    assert state == "resolved" and found.value == 0
    rows = query("SELECT rule, state, severity, value FROM stagelog.alerts ORDER BY ts", None)
    assert [(r["state"], r["severity"]) for r in rows] == [("firing", "critical"),
                                                          ("resolved", "critical")]
    current = query("SELECT state, times_fired FROM stagelog.alerts_current", None)
    assert [(r["state"], int(r["times_fired"])) for r in current] == [("resolved", 1)]


def test_a_baseline_rule_fires_outside_k_sigma(query):
    rule = Rule(name="drops_baseline", sql=DROPS, window_s=60, baseline=5, k=3.0)
    for i, rows in enumerate([10, 12, 11, 9, 10], start=1):  # five normal minutes
        drop(query, NOW - timedelta(seconds=60 * i + 30), rows)
    drop(query, NOW - timedelta(seconds=30), 11)
    assert not alerts.evaluate(query, rule, NOW).firing
    drop(query, NOW - timedelta(seconds=20), 40)  # this minute: 51
    found = alerts.evaluate(query, rule, NOW)
    assert found.firing and found.value == 51 and 10 < found.threshold < 15
    assert not alerts.evaluate(query, Rule(**{**rule.__dict__, "direction": "below"}), NOW).firing


def test_min_rows_means_no_data(query):
    rule = Rule(name="few", sql=DROPS, window_s=60, above=0, min_rows=3)
    drop(query, NOW - timedelta(seconds=5), 7)
    assert alerts.evaluate(query, rule, NOW).value is None


@pytest.mark.parametrize("doc,message", [
    ({"sql": "SELECT 1"}, "no name"),
    ({"name": "a", "sql": "SELECT 1"}, "above, below or baseline"),
    ({"name": "a", "sql": "SELECT 1", "above": "x"}, "must be a number"),
    ({"name": "a", "sql": "SELECT 1", "above": 1, "severity": "loud"}, "severity"),
    ({"name": "a", "sql": "SELECT 1", "above": 1, "window": "soon"}, "window"),
    ({"name": "a", "sql": "SELECT 1", "above": 1, "colour": "red"}, "unknown keys"),
    ({"name": "a", "sql": "SELECT 1", "baseline": 1}, "baseline needs"),
])
def test_bad_rules_are_refused_with_a_message(doc, message):
    with pytest.raises(AlertRuleError, match=message):
        rule_from_mapping(doc)


def test_a_rules_file_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "x"\nwindow = "30s"\nabove = 1\nsql = "SELECT 2 AS value"\n')
    monkeypatch.setenv("STAGELOG_ALERT_RULES", str(path))
    rules_path = config.load(home=tmp_path).alert_rules  # resolved in Settings, passed down
    assert rules_path == str(path)
    (rule,) = alerts.load_rules(rules_path)
    assert rule.name == "x" and rule.window_s == 30
    assert len(alerts.load_rules()) > 1  # no path: the shipped rule set, whatever the env says
    path.write_text('[[rule]]\nname = "x"\nabove = 1\nsql = "S"\n[[rule]]\nname = "x"\n'
                    'above = 2\nsql = "S"\n')
    with pytest.raises(AlertRuleError, match="repeat"):
        alerts.load_rules(rules_path)
    thread = alerts.AlertThread(lambda sql, params: [], 0.01, rules_path=rules_path)
    assert thread.interval_s == 0.1 and thread.evaluator.rules_path == rules_path


def test_firing_alerts_reach_metrics_and_the_report(query):
    from logging_backend.insights import report

    rule = Rule(name="drops", sql=DROPS, window_s=60, above=0, severity="critical")
    drop(query, NOW - timedelta(seconds=10), 5)
    Evaluator(query, [rule]).run_once(NOW)
    (firing,) = metrics.alerts_firing(query)
    assert firing["rule"] == "drops" and firing["severity"] == "critical"
    assert metrics.alert_history(query)[0]["state"] == "firing"
    data = report.ReportData(generated_at=NOW, window=None, alerts_firing=[firing],
                             alert_history=metrics.alert_history(query))
    page = report.render(data)
    assert 'id="alerts-firing-table"' in page and "drops: 5 &gt; 0" in page


def test_cli_lists_and_checks_the_rules(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from logging_backend.stack.cli import app

    monkeypatch.delenv("STAGELOG_DSN", raising=False)
    store.close_all()
    result = CliRunner().invoke(app, ["alerts", "--check", "--home", str(tmp_path / "home")],
                                env={"COLUMNS": "200"})
    store.close_all()
    assert result.exit_code == 0, result.output
    assert "8 alert rules" in result.output
    assert "feature_drift" in result.output and "never fired" in result.output
    assert "no data" in result.output


def test_the_thread_brings_rollups_up_to_date_before_each_evaluation(tmp_path):
    """The collector passes the latency rollup as ``before_each`` (migration 0092): it runs
    before every evaluation, and a failure of it is logged, the rules evaluated anyway."""
    import threading

    calls: list[str] = []
    evaluated = threading.Event()

    def before() -> None:
        calls.append("rollup")
        if len(calls) == 1:
            raise RuntimeError("store busy")

    def query(sql, params):
        calls.append("rule")
        if calls.count("rollup") >= 2:
            evaluated.set()
        return []

    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "x"\nwindow = "30s"\nabove = 1\nsql = "SELECT 2 AS value"\n')
    thread = alerts.AlertThread(query, 0.1, rules_path=str(path), before_each=before).start()
    try:
        assert evaluated.wait(10)
    finally:
        thread.stop()
    assert calls[0] == "rollup" and "rule" in calls[1:calls.index("rollup", 1)]
