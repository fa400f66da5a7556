import time, tempfile
from pathlib import Path
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
tmp = tempfile.mkdtemp(dir="/tmp/exp")
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
store.migrate(client)
client.command("SYSTEM STOP MERGES stagelog.stage_tensors")
for i in range(20):
    data = pa.concat_tables(flush_tables(50, 8, seed=i)["stage_tensors"])
    client.insert_arrow("stagelog.stage_tensors", data, settings={"insert_deduplication_token": f"t{i}"})
print(client.query("SELECT partition_id, count(), sum(rows), min(min_block_number), max(max_block_number) FROM system.parts WHERE database='stagelog' AND table='stage_tensors' AND active GROUP BY partition_id").result_rows)
pid = client.query("SELECT any(partition_id) FROM system.parts WHERE database='stagelog' AND table='stage_tensors' AND active").result_rows[0][0]
conn = client._backend._handle.conn
for q in (f"SELECT count() FROM stagelog.stage_tensors WHERE _partition_id = '{pid}' AND _block_number > 18 AND _block_number <= 20",
          f"SELECT count() FROM stagelog.stage_tensors WHERE _partition_id = '{pid}' AND _block_number > 18 AND _block_number <= 20 AND stage = 'features'",
          "SELECT count() FROM stagelog.stage_tensors"):
    r = conn.query(q + " FORMAT CSV")
    print(q[:110], "->", r.bytes().strip(), "rows_read", r.rows_read(), "bytes_read", r.bytes_read())
r = conn.query(f"EXPLAIN indexes = 1 SELECT count() FROM stagelog.stage_tensors WHERE _partition_id = '{pid}' AND _block_number > 18 AND _block_number <= 20 AND stage = 'features'")
print(r.bytes().decode())
cond = "toInt64(splitByChar('_', _part)[3]) > 18 AND toInt64(splitByChar('_', _part)[2]) <= 20"
for q in (f"SELECT count() FROM stagelog.stage_tensors WHERE _partition_id = '{pid}' AND {cond} AND _block_number > 18 AND _block_number <= 20 AND stage = 'features'",):
    r = conn.query(q + " FORMAT CSV"); print("with part cond ->", r.bytes().strip())
    r = conn.query("EXPLAIN indexes = 1 " + q); print("\n".join(l for l in r.bytes().decode().splitlines() if "Parts" in l or "Granules" in l))
print(conn.query("SELECT name, partition_id, min_block_number, max_block_number FROM system.parts WHERE database='stagelog' AND table='stage_tensors' AND active LIMIT 3 FORMAT CSV").bytes().decode())
