import json
from collections import Counter

import pytest

from riskpipe.preprocess import Preprocessor
from riskpipe.schema import CLASSES, RAW_FIELDS
from training import generator
from training.generator import generate, to_jsonl


def test_same_seed_same_events_other_seed_other_events():
    a = generate(300, seed=7, drift=0.3, dirty=0.1)
    b = generate(300, seed=7, drift=0.3, dirty=0.1)
    c = generate(300, seed=8, drift=0.3, dirty=0.1)
    assert to_jsonl(a) == to_jsonl(b)
    assert [e.label for e in a] == [e.label for e in b]
    assert to_jsonl(a) != to_jsonl(c)


@pytest.mark.parametrize("n", [0, 1, 17, 500])
def test_exactly_n_events(n):
    assert len(generate(n, seed=1, dirty=0.3)) == n


def test_clean_events_have_every_field_and_are_time_ordered():
    events = generate(400, seed=2)
    assert all(set(e.event) == set(RAW_FIELDS) for e in events)
    stamps = [e.event["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    assert len({e.event["event_id"] for e in events}) == 400


def test_class_priors_are_mostly_legit_with_both_fraud_kinds():
    counts = Counter(e.label for e in generate(6000, seed=3))
    assert set(counts) == set(CLASSES)
    assert 0.86 < counts["legit"] / 6000 < 0.94
    assert 0.04 < counts["card_fraud"] / 6000 < 0.09
    assert 0.02 < counts["account_takeover"] / 6000 < 0.06


def test_class_dependent_patterns():
    events = generate(6000, seed=4)

    def share(label, predicate):
        group = [e.event for e in events if e.label == label]
        return sum(predicate(e) for e in group) / len(group)

    assert share("card_fraud", lambda e: e["channel"] == "online") > 0.75
    assert share("legit", lambda e: e["channel"] == "online") < 0.4
    assert share("card_fraud", lambda e: e["ip_risk"] > 0.3) > share(
        "legit", lambda e: e["ip_risk"] > 0.3
    )
    assert share("account_takeover", lambda e: e["device_id"].startswith("d-new")) > 0.9


def test_drift_raises_amounts_and_ip_risk():
    base = [e.event for e in generate(3000, seed=5) if e.label == "legit"]
    drifted = [e.event for e in generate(3000, seed=5, drift=1.0) if e.label == "legit"]

    def mean(events, key):
        return sum(e[key] for e in events if e["currency"] == "EUR") / len(events)

    assert mean(drifted, "amount") > 1.2 * mean(base, "amount")
    assert mean(drifted, "ip_risk") > mean(base, "ip_risk") + 0.05


def test_dirty_events_are_flagged_by_preprocess_but_all_scorable():
    events = generate(2000, seed=6, dirty=0.2)
    rows = Preprocessor().process([json.dumps(e.event).encode() for e in events])
    assert len(rows) == 2000
    assert sum(r["duplicate"] for r in rows) > 20
    assert sum(bool(r["imputed"]) for r in rows) > 20
    assert sum(bool(r["unknown_category"]) for r in rows) > 20
    assert sum(bool(r["clipped"]) for r in rows) > 20
    clean = Preprocessor().process([json.dumps(e.event).encode() for e in generate(500, 6)])
    assert not any(r["duplicate"] or r["imputed"] or r["unknown_category"] for r in clean)


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"drift": 1.5}, {"dirty": -0.1}])
def test_out_of_range_arguments_are_refused(kwargs):
    args = {"n": 10, "seed": 1, **kwargs}
    with pytest.raises(ValueError):
        generate(**args)


def test_command_line_writes_jsonl_and_labels(tmp_path, capsys):
    labels = tmp_path / "labels.jsonl"
    argv = ["--n", "25", "--seed", "7", "--dirty", "0.05", "--labels", str(labels)]
    assert generator.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 25
    assert [json.loads(line) for line in lines] == [e.event for e in generate(25, 7, 0.0, 0.05)]
    label_rows = [json.loads(line) for line in labels.read_text().splitlines()]
    assert [r["event_id"] for r in label_rows] == [json.loads(line)["event_id"] for line in lines]
    assert {r["label"] for r in label_rows} <= set(CLASSES)
