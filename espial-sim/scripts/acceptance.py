#!/usr/bin/env python3
"""Runs the simulator acceptance grid of issues 2 and 3 and prints a summary.

usage: acceptance.py BIN [--nodes 5,50] [--seeds 1-20] [--scenarios a,b] [--extra ARGS]
Every run's JSON line is appended to /tmp/espial-sim-grid.jsonl. Exit 1 if any run failed.
"""
import json, statistics, subprocess, sys, argparse

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--nodes", default="5,50")
ap.add_argument("--seeds", default="1-20")
ap.add_argument("--scenarios", default="steady,master-crash,partition-heal,churn,loss,quorum,events,events-faults")
ap.add_argument("--extra", default="")
ap.add_argument("--timeout", type=int, default=1800)
a = ap.parse_args()
lo, hi = (int(x) for x in a.seeds.split("-"))
failed = []
log = open("/tmp/espial-sim-grid.jsonl", "a")
FIG = ["election_ms", "full_membership_ms", "failover_ms", "detection_ms", "heal_ms",
       "datagrams_per_delivery", "events_lost", "live_nodes_removed", "master_changes", "wall_ms"]
for sc in a.scenarios.split(","):
    for n in (int(x) for x in a.nodes.split(",")):
        rows = []
        for seed in range(lo, hi + 1):
            cmd = [a.bin, "--scenario", sc, "--nodes", str(n), "--seed", str(seed), "--json"] + a.extra.split()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
                line = [l for l in p.stdout.splitlines() if l.startswith("{")][-1]
                d = json.loads(line)
            except Exception as e:  # timeout or crash
                d = {"scenario": sc, "nodes": n, "seed": seed, "violations": [f"run failed: {e!r}"]}
                p = None
            log.write(json.dumps(d) + "\n"); log.flush()
            rows.append(d)
            if d.get("violations") or (p is not None and p.returncode != 0):
                failed.append((sc, n, seed, (d.get("violations") or ["exit status %s" % p.returncode])[0]))
        bad = sum(1 for r in rows if r.get("violations"))
        parts = [f"{sc:15} N={n:<5} runs={len(rows)} failed={bad}"]
        for f in FIG:
            vals = [r[f] for r in rows if isinstance(r.get(f), (int, float))]
            if vals:
                parts.append(f"{f} median={statistics.median(vals):g} max={max(vals):g}")
        bpn = [r["bytes_per_node_per_s"]["mean"] for r in rows if isinstance(r.get("bytes_per_node_per_s"), dict)]
        if bpn:
            parts.append(f"bytes/node/s mean(median)={statistics.median(bpn):g}")
        print("; ".join(parts), flush=True)
for f in failed:
    print("FAIL", *f[:3], f[3][:300])
sys.exit(1 if failed else 0)
