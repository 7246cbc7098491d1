#!/usr/bin/env python3
"""A producer in Python (standard library only): publishes a few stock
prices to a running Tidings hub. The events have the demo's shape (type
`price` on https://demo.tidings.dev/prices/PY), so the demo page shows a
PY row.

    python3 examples/producer.py [HUB_URL]      default http://127.0.0.1:8080
    COUNT=20 INTERVAL=0.5 python3 examples/producer.py
    TOKEN=<publisher JWT> python3 examples/producer.py https://hub.example

Prints the id the hub gave each event.
"""

import json
import os
import random
import sys
import time
import urllib.parse
import urllib.request

hub = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
count = int(os.environ.get("COUNT", "5"))
interval = float(os.environ.get("INTERVAL", "1"))
token = os.environ.get("TOKEN")

opening = price = 42.00
for i in range(count):
    price = round(max(1.0, price * (1 + random.gauss(0, 0.003))), 2)
    change = round(price - opening, 2)
    event = {
        "symbol": "PY",
        "name": "Python producer",
        "price": price,
        "open": opening,
        "change": change,
        "changePct": round(change * 100 / opening, 2),
        "time": int(time.time() * 1000),
    }
    # Form encoding, as the Mercure protocol has it.
    body = urllib.parse.urlencode(
        {
            "topic": "https://demo.tidings.dev/prices/PY",
            "type": "price",
            "data": json.dumps(event, separators=(",", ":")),
        }
    ).encode()
    request = urllib.request.Request(f"{hub}/publish", data=body, method="POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.read().decode(), flush=True)
    if i + 1 < count:
        time.sleep(interval)
