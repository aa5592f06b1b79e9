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
# Every provider but sockets by default (NNOFI_TEST_PROVIDERS=tcp,shm
# narrows the run, or adds sockets): libfabric 1.17's sockets provider
# sometimes loses a closing peer's last frames, and its fi_close can hang
# joining its own connection thread (README, providers).
DEFAULT = ",".join(name for name, _ in CANDIDATES if name != "sockets")
WANTED = os.environ.get("NNOFI_TEST_PROVIDERS", DEFAULT).split(",")
TESTED = [name for name, ep_type in CANDIDATES if (name, ep_type) in FOUND and name in WANTED]
# libfabric's shm cannot connect two endpoints of one process (nnofi
# refuses it: see test_shm_within_one_process_is_refused), so tests with
# both ends here run on the others, and test_ofi_processes.py runs every
# provider across two processes.
IN_PROCESS = [p for p in TESTED if p != "shm"]


def url_for(provider):
    return f"ofi://127.0.0.1:0@{provider}"
