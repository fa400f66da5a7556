"""Where the stubs' Python samples go (py-spy raw output of pyspystub.py, mode spool)."""
import collections, glob
threads = collections.Counter(); inlog = collections.Counter(); total = 0
for f in glob.glob("pyspy/spool-*.txt"):
    for line in open(f):
        stack, _, n = line.rstrip().rpartition(" ")
        n = int(n); frames = stack.split(";")
        total += n
        if any("Condition.wait" in fr for fr in frames):
            threads["flush thread, waiting"] += n
        elif any("BatchProcessor._run" in fr for fr in frames):
            threads["flush thread, working"] += n
        elif any("StageModel.execute" in fr for fr in frames):
            threads["execute()"] += n
            hit = next((fr for fr in frames if "logging_backend/" in fr), None)
            if hit:
                inlog[hit.split(" (")[0]] += n
        else:
            threads["no Python frame (stub C++) / other"] += n
print("samples", total)
for k, v in threads.most_common():
    print(f"{v:6d}  {k}")
print(f"of execute(): in logging_backend {sum(inlog.values())}")
for k, v in inlog.most_common():
    print(f"{v:6d}  {k}")
