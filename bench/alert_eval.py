"""How long one evaluation of the shipped alert rules takes (it holds the collector's store lock).

``python -m bench.alert_eval --requests 2000 --out bench/results/i15/alert-eval.txt`` fills a
fresh embedded store with the arrows of ``requests`` 25-row requests served in the last five
minutes (FEATURES tensors, predictions, stage events), loads the drift baseline, and times
``insights.alerts.Evaluator.run_once`` over ``logging_backend/insights/alert_rules.toml``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from bench.machine import cpu_model
from logging_backend import store
from logging_backend.insights import alerts, metrics

ROWS = 25
N_FEATURES = 45
STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")


def fill(client, requests: int, seed: int = 0) -> None:
    """Insert ``requests`` requests' FEATURES, predictions and stage events, spread over 5 min."""
    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc)
    tensors, preds, events = [], [], []
    for i in range(requests):
        ts = now - timedelta(seconds=300 * (i + 1) / requests)
        rid = f"bench-{i}"
        values = rng.normal(size=ROWS * N_FEATURES).tolist()
        tensors.append([ts, rid, "features", "1", "output", "FEATURES", "float32",
                        [ROWS, N_FEATURES], values, []])
        for row in range(ROWS):
            for model in ("mlp", "forest", "logreg", "aggregate"):
                probs = [0.9, 0.05, 0.05]
                preds.append([ts, rid, row, model, model, "1",
                              dict(zip(("legit", "card_fraud", "account_takeover"), probs,
                                       strict=True)), probs, "legit",
                              "approve" if model == "aggregate" else ""])
        for stage in STAGES:
            events.append([ts, rid, ROWS, stage, stage, "1", "ok", 1.0, 0.5])
    client.insert("stagelog.stage_tensors", tensors, column_names=[
        "ts", "request_id", "stage", "model_version", "direction", "name", "dtype", "shape",
        "values_f64", "values_str"])
    client.insert("stagelog.predictions", preds, column_names=[
        "ts", "request_id", "row", "stage", "model", "model_version", "class_probs", "probs",
        "predicted_class", "decision"])
    client.insert("stagelog.stage_events", events, column_names=[
        "ts", "request_id", "rows", "stage", "model_name", "model_version", "status", "wall_ms",
        "cpu_ms"])


def main(argv: list[str] | None = None) -> int:
    """Command line: fill a store, time the evaluations, print and optionally save."""
    parser = argparse.ArgumentParser(prog="python -m bench.alert_eval", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines = [f"# python -m bench.alert_eval --requests {args.requests}; {cpu_model()}"]
    with tempfile.TemporaryDirectory() as tmp:
        client = store.connect(f"chdb://{tmp}/ch")
        store.migrate(client)
        query = metrics.client_query(client)
        metrics.ensure_baseline(query)
        fill(client, args.requests)
        rules = alerts.load_rules(alerts.DEFAULT_RULES)
        evaluator = alerts.Evaluator(query, rules)
        evaluator.states = {}
        per_rule: dict[str, list[float]] = {r.name: [] for r in rules}
        totals = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            for rule in rules:
                t0 = time.perf_counter()
                alerts.evaluate(query, rule, datetime.now(timezone.utc))
                per_rule[rule.name].append((time.perf_counter() - t0) * 1000)
            totals.append((time.perf_counter() - started) * 1000)
        store.close_all()
    lines.append(f"served rows in the 5-minute window: {args.requests * ROWS} "
                 f"({args.requests} requests x {ROWS} rows, {N_FEATURES} features each)")
    for name, times in per_rule.items():
        lines.append(f"{name:22s} median {statistics.median(times):8.1f} ms")
    lines.append(f"{'all rules':22s} median {statistics.median(totals):8.1f} ms "
                 f"(min {min(totals):.1f}, max {max(totals):.1f}; {args.repeat} runs)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
