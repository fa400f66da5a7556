import sys, time, tempfile, resource
from pathlib import Path
sys.path.insert(0, "/work/main")
import chdb
from logging_backend import store
from logging_backend.store import sessions
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
tmp = tempfile.mkdtemp()
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
store.migrate(client)
path = str(Path(tmp)/'ch')
lim = sessions.ReaderLimits().settings()
N = 30
def t(label, fn):
    c0 = cpu(); w0 = time.perf_counter()
    for _ in range(N): fn()
    print(f"{label:40s} cpu {(cpu()-c0)/N*1e3:6.2f} ms  wall {(time.perf_counter()-w0)/N*1e3:6.2f} ms", flush=True)
def connect_close():
    c = chdb.connect(path); c.close()
def connect_sets():
    c = chdb.connect(path)
    for k, v in lim.items(): c.query(f"SET {k} = {sessions.literal(v)}")
    c.query("USE `stagelog`"); c.query("SET readonly = 1"); c.close()
def connect_one_set():
    c = chdb.connect(path)
    c.query("SET " + ", ".join(f"{k} = {sessions.literal(v)}" for k, v in lim.items())); c.query("USE `stagelog`"); c.query("SET readonly = 1"); c.close()
c = chdb.connect(path)
def one_query():
    c.query("SELECT 1")
sql = ("SELECT request_id FROM (SELECT request_id, count() AS n FROM stagelog.stage_events WHERE request_id IN ['a','b'] GROUP BY request_id) AS e"
       " INNER JOIN (SELECT request_id, count() AS n FROM stagelog.predictions WHERE request_id IN ['a','b'] GROUP BY request_id) AS p USING request_id")
def poll(): c.query(sql)
def explain(): c.query("EXPLAIN " + sql)
t("SELECT 1 on open conn", one_query)
t("connect+close", connect_close)
t("connect+sets (door)", connect_sets)
t("connect+one SET", connect_one_set)
t("poll query", poll)
t("EXPLAIN poll", explain)
sql2 = ("SELECT request_id FROM (SELECT request_id, 1 AS e FROM stagelog.stage_events WHERE request_id IN ['a','b']"
        " UNION ALL SELECT request_id, 0 AS e FROM stagelog.predictions WHERE request_id IN ['a','b'])"
        " GROUP BY request_id HAVING countIf(e = 1) >= 6 AND countIf(e = 0) >= 32")
def poll2(): c.query(sql2)
t("poll union", poll2)
sql3 = "SELECT request_id, count() FROM stagelog.stage_events WHERE request_id IN ['a','b'] GROUP BY request_id"
t("poll events only", lambda: c.query(sql3))
t("EXPLAIN AST poll", lambda: c.query("EXPLAIN AST " + sql))
t("SELECT count() stage_events", lambda: c.query("SELECT count() FROM stagelog.stage_events"))
