"""`make demo`: the whole stack on loopback, a primary outage, failover and failback."""

from __future__ import annotations

import sys


def main() -> int:
    """Run the demo scenario."""
    print("make demo: the full scenario arrives with the responder (issue 5).", file=sys.stderr)
    print("Meanwhile: python -m sandbox up --dir /tmp/ddb-sandbox", file=sys.stderr)
    return 1
