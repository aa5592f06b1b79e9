"""Which libfabric providers the ofi:// tests run on: those fi_getinfo
finds here, from the list below, that NNOFI_TEST_PROVIDERS asks for."""
import os

import nnofi.fabric

FOUND = {(p.provider, p.ep_type) for p in nnofi.fabric.providers()}
MSG_PROVIDERS = sorted({name for name, ep_type in FOUND if ep_type == "MSG" and ";" not in name})
# Connected endpoints (MSG), then reliable-datagram ones (RDM) with nnofi's
# own connection handshake on top.
CANDIDATES = [("tcp", "MSG"), ("sockets", "MSG"), ("verbs", "MSG"),
              ("shm", "RDM"), ("tcp;ofi_rxm", "RDM"), ("udp;ofi_rxd", "RDM"), ("verbs;ofi_rxm", "RDM")]
# sockets: reports a send complete before the bytes left, so a close right
# after sending can lose the tail (linger cannot see it); udp;ofi_rxd: its
# reads progress only when polled, too slow for the 256 MiB test in a
# parallel run. Both run only on request: NNOFI_TEST_PROVIDERS=tcp,sockets
DEFAULT = "tcp,verbs,shm,tcp;ofi_rxm,verbs;ofi_rxm"
WANTED = os.environ.get("NNOFI_TEST_PROVIDERS", DEFAULT).split(",")
TESTED = [name for name, ep_type in CANDIDATES if (name, ep_type) in FOUND and name in WANTED]
# libfabric's shm cannot connect two endpoints of one process (nnofi
# refuses it: see test_shm_within_one_process_is_refused), so tests with
# both ends here run on the others, and test_ofi_processes.py runs every
# provider across two processes.
IN_PROCESS = [p for p in TESTED if p != "shm"]


def url_for(provider):
    return f"ofi://127.0.0.1:0@{provider}"
