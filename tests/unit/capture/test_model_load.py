"""What a stage computes at model load reaches the store: per-file digests, the model config,
a notice's scope and drop counts as numbers (migration 0007)."""

import json

from logging_backend import store
from logging_backend.capture.records import ModelIdentity, PolicyNotice
from logging_backend.capture.stage import StageLog
from logging_backend.collector.shipper import Shipper


def test_model_load_details_and_drop_counts_are_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAGELOG_LOGGING", "on")
    version = tmp_path / "repo" / "mlp" / "1"
    version.mkdir(parents=True)
    (version / "model.npz").write_bytes(b"weights")
    (version / "model_card.json").write_text('{"metrics": {}}')
    cfg = {
        "name": "mlp",
        "parameters": {
            "logging_policy": {"string_value": "summary"},
            "logging_reason": {"string_value": "too big"},
        },
    }
    args = {
        "model_name": "mlp",
        "model_version": "1",
        "model_config": json.dumps(cfg),
        "model_repository": str(tmp_path / "repo" / "mlp"),
        "model_instance_name": "mlp_0",
    }
    log = StageLog.from_triton_args(args, class_names=("a", "b", "c"))
    ident = ModelIdentity(model="mlp", model_version="1")
    log.processor.emit(PolicyNotice(ident, 1, "buffer", "dropped", 0.0, "buffer full", dropped=42))
    log.close()

    client = store.connect(f"chdb://{tmp_path / 'ch'}")
    store.migrate(client)
    Shipper(client, tmp_path / "home" / "spool").ship_all()
    (row,) = client.query("SELECT artifacts, model_config FROM stagelog.model_versions").result_rows
    assert set(row[0]) == {"model.npz", "model_card.json"}
    assert all(len(digest) == 64 for digest in row[0].values())
    assert json.loads(row[1])["parameters"]["logging_reason"]["string_value"] == "too big"
    notices = client.query(
        "SELECT scope, policy, dropped FROM stagelog.logging_policy "
        "WHERE scope != 'retention' ORDER BY scope"
    ).result_rows
    assert notices == [("buffer", "dropped", 42), ("tensors", "summary", 0)]
    store.close_all()
