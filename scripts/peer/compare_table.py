#!/usr/bin/env python3
"""Render two scimflow-simulate --report-json reports side by side.

usage: compare_table.py SCIMFLOW.json PEER.json [--names scimflow,scim2-server] [--markdown]

Ratios are peer / scimflow for latencies (higher = peer slower) and scimflow / peer for
throughput (higher = scimflow faster), so every ratio above 1 favours scimflow.
Standard library only.
"""

import argparse
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 100:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def ratio(num, den):
    if num is None or den is None or den == 0:
        return "-"
    return f"{num / den:.1f}x"


class Table:
    def __init__(self, title, headers, markdown):
        self.title, self.headers, self.rows, self.markdown = title, headers, [], markdown

    def add(self, *cells):
        self.rows.append([fmt(c) if not isinstance(c, str) else c for c in cells])

    def render(self):
        out = []
        if self.markdown:
            out.append(f"\n**{self.title}**\n")
            out.append("| " + " | ".join(self.headers) + " |")
            out.append("|" + "|".join("---" for _ in self.headers) + "|")
            for r in self.rows:
                out.append("| " + " | ".join(r) + " |")
        else:
            widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                      for i, h in enumerate(self.headers)]
            out.append(f"\n== {self.title} ==")
            out.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                                 for i, (h, w) in enumerate(zip(self.headers, widths))))
            for r in self.rows:
                out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                     for i, (c, w) in enumerate(zip(r, widths))))
        return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("peer")
    ap.add_argument("--names", default="scimflow,scim2-server")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    a, b = load(args.ours), load(args.peer)
    na, nb = args.names.split(",")
    md = args.markdown
    tables = []

    t = Table("Run", ["", na, nb, f"ratio"], md)
    t.add("wall time (s)", a["elapsed_s"], b["elapsed_s"], ratio(b["elapsed_s"], a["elapsed_s"]))
    t.add("requests", a["requests"], b["requests"], "")
    t.add("throughput (req/s, load phases)", a["throughput_rps"], b["throughput_rps"],
          ratio(a["throughput_rps"], b["throughput_rps"]))
    t.add("unexpected statuses", a["errors"]["unexpected"], b["errors"]["unexpected"], "")
    t.add("error rate", f'{a["errors"]["rate"]:.4f}', f'{b["errors"]["rate"]:.4f}', "")
    for label, r in ((na, a), (nb, b)):
        pass
    va, vb = a.get("verification"), b.get("verification")
    def vtext(v):
        if v is None:
            return "skipped"
        return "match" if v["differences"] == 0 else f'{v["differences"]} differences'
    t.add("verification", vtext(va), vtext(vb), "")
    t.add("passed", str(a["passed"]), str(b["passed"]), "")
    tables.append(t)

    t = Table("Phases (seconds / req/s)", ["phase", f"{na} s", f"{nb} s", "time ratio",
                                           f"{na} req/s", f"{nb} req/s"], md)
    pb = {p["name"]: p for p in b["phases"]}
    for p in a["phases"]:
        q = pb.get(p["name"])
        t.add(p["name"], p["elapsed_s"], q and q["elapsed_s"],
              ratio(q and q["elapsed_s"], p["elapsed_s"]),
              p["requests_per_second"], q and q["requests_per_second"])
    tables.append(t)

    t = Table("Latency by operation (ms; ratio = peer/scimflow)",
              ["operation", "n", f"{na} p50", f"{nb} p50", "p50 ratio",
               f"{na} p99", f"{nb} p99", "p99 ratio"], md)
    ob = {o["op"]: o for o in b["operations"]}
    seen = set()
    for o in a["operations"]:
        q = ob.get(o["op"])
        seen.add(o["op"])
        t.add(o["op"], f'{o["count"]}/{q["count"] if q else 0}', o["p50_ms"], q and q["p50_ms"],
              ratio(q and q["p50_ms"], o["p50_ms"]), o["p99_ms"], q and q["p99_ms"],
              ratio(q and q["p99_ms"], o["p99_ms"]))
    for o in b["operations"]:
        if o["op"] not in seen:
            t.add(o["op"], f'0/{o["count"]}', None, o["p50_ms"], "-", None, o["p99_ms"], "-")
    tables.append(t)

    t = Table("Unexpected statuses (after retries) and retries", ["", na, nb], md)
    keys = sorted(set(a["errors"]["by_status"]) | set(b["errors"]["by_status"]))
    for k in keys:
        t.add(f"status {k}", a["errors"]["by_status"].get(k, 0), b["errors"]["by_status"].get(k, 0))
    keys = sorted(set(a["errors"]["retries"]) | set(b["errors"]["retries"]))
    for k in keys:
        t.add(f"retried {k}", a["errors"]["retries"].get(k, 0), b["errors"]["retries"].get(k, 0))
    if not t.rows:
        t.add("(none)", 0, 0)
    tables.append(t)

    for series, label in (("small_changes", "small changes (<= %d members)"),
                          ("bulk_changes", "bulk changes")):
        ma = a["membership_latency_by_group_size"]
        mb = b["membership_latency_by_group_size"]
        lab = label % ma.get("small_change_members", 10) if "%d" in label else label
        t = Table(f"Membership PATCH latency by group size, {lab} (ms)",
                  ["group size", "n", f"{na} p50", f"{nb} p50", "p50 ratio",
                   f"{na} p99", f"{nb} p99", "p99 ratio"], md)
        bb = {(x["size_from"], x["size_to"]): x for x in mb[series]}
        keys = sorted(set(bb) | {(x["size_from"], x["size_to"]) for x in ma[series]})
        ba = {(x["size_from"], x["size_to"]): x for x in ma[series]}
        for k in keys:
            x, y = ba.get(k), bb.get(k)
            t.add(f"[{k[0]}, {k[1]})", f'{x["count"] if x else 0}/{y["count"] if y else 0}',
                  x and x["p50_ms"], y and y["p50_ms"], ratio(y and y["p50_ms"], x and x["p50_ms"]),
                  x and x["p99_ms"], y and y["p99_ms"], ratio(y and y["p99_ms"], x and x["p99_ms"]))
        tables.append(t)

    print("\n".join(tb.render() for tb in tables))
    for label, r in ((na, a), (nb, b)):
        if r.get("failures"):
            print(f"\n{label} failures:")
            for f in r["failures"]:
                print(f"  - {f}")
        samples = r["errors"].get("samples") or []
        if samples:
            print(f"\n{label}: first failing requests (of {len(samples)} kept):")
            for s in samples[:8]:
                print("  - " + json.dumps(s)[:400])


if __name__ == "__main__":
    sys.exit(main())
