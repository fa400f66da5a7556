import json
from datetime import datetime, timezone

import numpy as np
import pytest

from riskpipe.features import FeatureBuilder
from riskpipe.preprocess import Preprocessor, dumps_row
from riskpipe.replay import PARAMETER, ReplayError, ReplayState, from_request, parse
from training.generator import generate

ARRIVAL = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)


def _raws(events):
    return [json.dumps(e.event).encode() for e in events]


def _logged_state(processed, card_state, request_id="r-1"):
    """The replay state as the CLI builds it from the logged arrows."""
    imputed = [r["ts"] for r in processed if "timestamp" in r["imputed"]]
    return ReplayState(
        of=request_id,
        duplicate=tuple(r["duplicate"] for r in processed),
        arrival_ts=imputed[0] if imputed else None,
        # what the store gives back: int64/bool as float64, strings as str
        card_state={k: [v.item() if hasattr(v, "item") else v for v in col]
                    for k, col in card_state.items()},
    )


def _cards(builder):
    return {k: (c.count, c.mean_amount_eur, list(c.recent)) for k, c in builder._cards.items()}


def test_replay_reproduces_stateful_stages_bit_for_bit_and_leaves_state_alone():
    events = generate(200, seed=11, dirty=0.2)
    pre = Preprocessor(clock=lambda: ARRIVAL)
    feats = FeatureBuilder()
    # warm the state, then serve the request that will be replayed
    feats.build(pre.process(_raws(events[:150])))
    request = _raws(events[150:175])
    processed = pre.process(request)
    features, card_state = feats.build(processed)
    assert any(r["duplicate"] for r in processed) or any(card_state["txn_count"])

    # a naive replay changes the outputs: every event is a duplicate now
    naive_pre = Preprocessor(clock=lambda: ARRIVAL)
    naive_pre.process(_raws(events[:175]))
    assert all(r["duplicate"] for r in naive_pre.process(request))

    state = parse(_logged_state(processed, card_state).to_json())
    seen_before = list(pre._seen)
    cards_before = _cards(feats)
    later = Preprocessor(clock=lambda: datetime(2027, 1, 1, tzinfo=timezone.utc))
    later._seen = pre._seen
    replayed = later.process(request, state)
    replay_features, replay_state = feats.build(replayed, state)

    assert [dumps_row(r) for r in replayed] == [dumps_row(r) for r in processed]
    assert replay_features.tobytes() == features.tobytes()
    for key, column in card_state.items():
        assert np.array_equal(replay_state[key], column), key
    assert list(pre._seen) == seen_before
    assert _cards(feats) == cards_before


def test_replay_state_must_fit_the_request():
    pre = Preprocessor()
    raws = _raws(generate(3, seed=1))
    with pytest.raises(ReplayError, match="duplicate flags"):
        pre.process(raws, ReplayState(of="r", duplicate=(False,)))
    with pytest.raises(ReplayError, match="card state"):
        FeatureBuilder().build(pre.process(raws), ReplayState(of="r"))
    with pytest.raises(ReplayError):
        parse('{"duplicate": []}')
    with pytest.raises(ReplayError):
        parse("not json")


class _Request:
    def __init__(self, params):
        self._params = params

    def parameters(self):
        return self._params


def test_from_request_reads_the_triton_parameter():
    assert from_request(_Request("{}")) is None
    assert from_request(_Request("")) is None
    value = ReplayState(of="r-9", duplicate=(True,)).to_json()
    state = from_request(_Request(json.dumps({PARAMETER: value, "other": 1})))
    assert state is not None and state.of == "r-9" and state.duplicate == (True,)
