import sys, time, tempfile, statistics
from pathlib import Path
sys.path.insert(0, "/work/main")
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store

tables = [flush_tables(200, 8, seed=c) for c in range(12)]
pt = time.process_time
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
    store.migrate(client)
    for t in ("stage_events", "predictions", "stage_tensors"):
        ddl = client.command(f"SHOW CREATE TABLE stagelog.{t}")
        ddl = ddl.replace("\\n", "\n") if isinstance(ddl, str) else ddl
        client.command(ddl.replace(f"stagelog.{t}", f"stagelog.{t}_nobloom", 1).split("INDEX idx_request_id")[0].rstrip().rstrip(",") + "\n)" + ddl.split("INDEX idx_request_id")[1].split(")", 2)[-1] if False else f"CREATE TABLE stagelog.{t}_plain AS stagelog.{t}")
        for name in ("plain",):
            pass
    client.command("ALTER TABLE stagelog.stage_events_plain DROP INDEX idx_request_id")
    client.command("ALTER TABLE stagelog.predictions_plain DROP INDEX idx_request_id")
    client.command("ALTER TABLE stagelog.stage_tensors_plain DROP INDEX idx_request_id")
    def run(label, table, src, settings, n_rows=None):
        cpus, walls = [], []
        for c, tb in enumerate(tables):
            data = pa.concat_tables(tb[src])
            if n_rows is not None:
                data = data.slice(0, n_rows)
            s = {**settings}
            if "insert_deduplicate" in s and s["insert_deduplicate"]:
                s["insert_deduplication_token"] = f"{label}-{c}"
            c0, w0 = pt(), time.monotonic()
            client.insert_arrow(f"stagelog.{table}", data, settings=s)
            cpus.append(pt() - c0); walls.append(time.monotonic() - w0)
            time.sleep(0.3)
        print(f"{label:40s} rows {data.num_rows:5d} cpu ms/insert {statistics.median(cpus)*1e3:6.1f} wall {statistics.median(walls)*1e3:6.1f}", flush=True)
    base = {"async_insert": 0, "insert_deduplicate": 1}
    for src in ("stage_events", "predictions", "stage_tensors"):
        run(f"{src} as is", src, src, base)
        run(f"{src} one row", src, src, base, n_rows=1)
        run(f"{src} no dedup", src, src, {"async_insert": 0, "insert_deduplicate": 0})
        run(f"{src} no bloom", f"{src}_plain", src, base)
