#!/usr/bin/env python3
"""Isolated membership PATCH latency against group size (no concurrent load, one client).

usage: patch_vs_size.py BASE_URL TOKEN [SIZES...]   (default sizes 100 1000 3000)

For each size N: creates N users and one group holding them (POST in one body), then times
  add1   - PATCH adding 1 member (Okta/Entra "add members"), median of 5
  rm1    - PATCH removing 1 member by filter (Okta `remove members[value eq ".."]`), median of 5
  rm100  - one PATCH of 100 Okta-style `remove members[value eq ".."]` ops
Standard library only. Prints one line per size.
"""
import json, statistics, sys, time, urllib.request, uuid

base, token = sys.argv[1].rstrip("/"), sys.argv[2]
sizes = [int(s) for s in sys.argv[3:]] or [100, 1000, 3000]
H = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


def req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, method=method, headers=H)
    t = time.perf_counter()
    with urllib.request.urlopen(r, timeout=600) as resp:
        out = resp.read()
    return (time.perf_counter() - t) * 1000, (json.loads(out) if out else None)


PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
print(f"{'size':>6} {'add1 ms':>9} {'rm1 ms':>9} {'rm100 ms':>9}")
run = uuid.uuid4().hex[:6]
for n in sizes:
    ids = []
    for i in range(n + 10):
        _, u = req("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                       "userName": f"pvs{run}.{n}.{i}@example.com", "active": True})
        ids.append(u["id"])
    members, extra = ids[:n], ids[n:]
    _, g = req("POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                   "displayName": f"pvs {run} {n}",
                                   "members": [{"value": m} for m in members]})
    gid = g["id"]
    add, rm = [], []
    for k in range(5):
        ms, _ = req("PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": extra[k]}]}]})
        add.append(ms)
        ms, _ = req("PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": [
            {"op": "remove", "path": f'members[value eq "{extra[k]}"]'}]})
        rm.append(ms)
    ops = [{"op": "remove", "path": f'members[value eq "{m}"]'} for m in members[:100]]
    rm100, _ = req("PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": ops})
    print(f"{n:>6} {statistics.median(add):>9.1f} {statistics.median(rm):>9.1f} {rm100:>9.1f}", flush=True)
