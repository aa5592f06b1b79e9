"""Ports for lab tests, unique per pytest-xdist worker: worker gwN draws
from [base + N*span, base + (N+1)*span), so parallel workers never meet
on a port, and a worker uses each of its ports once before wrapping.
Below Linux's ephemeral range (32768+), so no dialer's source port takes
one. NNOFI_LAB_PORT_BASE moves the whole range (two runs at once)."""
from __future__ import annotations

import os
import threading

BASE = 20000
SPAN = 500


def worker_index(worker_id: str = None) -> int:
    wid = worker_id if worker_id is not None else os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(wid[2:]) if wid.startswith("gw") and wid[2:].isdigit() else 0


class Ports:
    def __init__(self, worker_id: str = None, base: int = None, span: int = SPAN) -> None:
        base = int(os.environ.get("NNOFI_LAB_PORT_BASE", BASE)) if base is None else base
        slots = max(1, (32768 - base) // span)  # workers beyond that share ranges (gw0 with gw25, ...)
        self.first = base + (worker_index(worker_id) % slots) * span
        self.span = span
        self._n = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            port = self.first + self._n % self.span
            self._n += 1
            return port
