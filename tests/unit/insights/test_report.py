import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from logging_backend.insights import report
from logging_backend.insights.report import ReportData, Span

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def fake_data() -> ReportData:
    return ReportData(
        generated_at=T0 + timedelta(minutes=10),
        window=(T0, T0 + timedelta(minutes=9)),
        latency={
            "preprocess": [(T0 + timedelta(minutes=i), 0.3 + i / 10, 0.9, 50) for i in range(9)],
            "mlp": [(T0 + timedelta(minutes=i), 0.5, 1.5, 50) for i in range(9)],
        },
        request_id="req-<1>",
        waterfall=[
            Span("preprocess", 0.0, 0.4, 0.3, "ok", "1"),
            Span("features", 0.5, 0.8, 0.7, "ok", "1"),
            Span("mlp", 1.4, 0.6, 0.5, "ok", "2"),
            Span("aggregate", 2.1, 0.2, 0.2, "error", "1"),
        ],
        prediction_mix={"mlp": {"legit": 90, "card_fraud": 7, "account_takeover": 3},
                        "aggregate": {"legit": 92, "card_fraud": 8}},
        decision_mix={"approve": 85, "review": 10, "decline": 5},
        action_mix={"approve": 40, "block_card": 2},
        drift=[("log_amount_eur", 0.41), ("ip_risk", 0.12), ("hour_sin", 0.01)],
        drift_over_time={"log_amount_eur": [(T0, 0.01), (T0 + timedelta(minutes=5), 0.4)]},
        accuracy=[{"model": "aggregate", "model_version": "1", "labelled_rows": 30,
                   "accuracy": 0.9, "log_loss": 0.3}],
        latency_table=[{"stage": "mlp", "p50_ms": 0.5}],
        notes=[{"id": "x", "kind": "experiment", "title": "Plan <A> & B", "valid_from": T0,
                "valid_to": None, "tags": ["drift"]}],
    )


def test_report_is_well_formed_and_self_contained():
    page = report.render(fake_data())
    body = page.split("\n", 1)[1]
    ET.fromstring(body.replace("&nbsp;", " "))  # parses as XML: every tag closed, text escaped
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "Plan &lt;A&gt; &amp; B" in page and "req-&lt;1&gt;" in page


def test_report_has_every_plot_with_its_data():
    page = report.render(fake_data())
    root = ET.fromstring(page.split("\n", 1)[1])
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    for element in ("latency-chart", "waterfall-chart", "prediction-mix-chart",
                    "decision-mix-chart", "action-mix-chart", "drift-chart", "drift-time-chart",
                    "accuracy-table", "latency-table", "notes-list"):
        assert element in ids, element
    ns = "{http://www.w3.org/2000/svg}"
    series = [el.get("data-series") for el in root.iter(f"{ns}polyline")]
    assert {"preprocess", "mlp", "log_amount_eur"} <= set(series)
    spans = [el for el in root.iter(f"{ns}rect") if el.get("class") == "span"]
    assert [s.get("data-stage") for s in spans] == ["preprocess", "features", "mlp", "aggregate"]
    assert spans[-1].get("fill") == "#E45756"  # the failed stage is red
    # Bars are proportional: 0.41 vs 0.12 PSI.
    bars = {el.get("data-name"): float(el.get("width")) for el in root.iter(f"{ns}rect")
            if el.get("class") == "bar"}
    assert bars["log_amount_eur"] / bars["ip_risk"] == __import__("pytest").approx(0.41 / 0.12)
    shares = [el for el in root.iter(f"{ns}rect") if el.get("class") == "share"
              and el.get("data-group") == "decisions"]
    assert [s.get("data-category") for s in shares] == ["approve", "review", "decline"]


def test_empty_store_renders_placeholders():
    page = report.render(ReportData(generated_at=T0, window=None))
    assert "no traffic logged yet" in page
    assert page.count("no data yet") >= 5
    ET.fromstring(page.split("\n", 1)[1])
