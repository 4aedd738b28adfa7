"""Run scim2-tester's checks against a live SCIM server and fail on any failed check.

usage: conformance.py BASE_URL TOKEN

A check fails when its status is ERROR (violates a MUST) or CRITICAL. Every result is printed,
with counts per status, so DEVIATION/ACCEPTABLE notes stay visible too.
"""

import collections
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

FAILED = {Status.ERROR, Status.CRITICAL}


def main() -> int:
    base_url, token = sys.argv[1], sys.argv[2]
    http = httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    counts = collections.Counter(result.status.name for result in results)
    for result in results:
        marker = "FAIL" if result.status in FAILED else "ok  "
        resource = f"[{result.resource_type}] " if result.resource_type else ""
        print(f"{marker} {result.status.name:<10} {resource}{result.title}: {result.reason or ''}")
    print("scim2-tester results:", dict(sorted(counts.items())))
    failed = sum(1 for result in results if result.status in FAILED)
    print(f"{failed} failed checks out of {len(results)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
