import gc, time, threading, os, sys, json
_acc = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
_t = [0.0]
def _cb(phase, info):
    if phase == "start":
        _t[0] = time.thread_time()
    else:
        g = info["generation"]; _acc[g][0] += 1; _acc[g][1] += time.thread_time() - _t[0]
gc.callbacks.append(_cb)
def _dump():
    while True:
        time.sleep(2)
        try:
            with open(f"/tmp/exp/gcout/gc-{os.getpid()}.json", "w") as f:
                json.dump({"argv": sys.argv[:2], "acc": _acc, "objs": len(gc.get_objects(2)) if False else None, "t": time.time()}, f)
        except Exception:
            pass
threading.Thread(target=_dump, daemon=True).start()
