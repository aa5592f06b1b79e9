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
# Every provider found, unless NNOFI_TEST_PROVIDERS=tcp,shm narrows the run.
DEFAULT = ",".join(name for name, _ in CANDIDATES)
WANTED = os.environ.get("NNOFI_TEST_PROVIDERS", DEFAULT).split(",")
TESTED = [name for name, ep_type in CANDIDATES if (name, ep_type) in FOUND and name in WANTED]
# libfabric's shm cannot connect two endpoints of one process (nnofi
# refuses it: see test_shm_within_one_process_is_refused), so tests with
# both ends here run on the others, and test_ofi_processes.py runs every
# provider across two processes.
IN_PROCESS = [p for p in TESTED if p != "shm"]


def url_for(provider):
    return f"ofi://127.0.0.1:0@{provider}"


# Measured with tests/transport/test_ofi.py::test_pushers_closing_at_once_lose_nothing
# (libfabric 1.17): about 1 connection in 100 set up at the same moment as
# another to the same listener breaks inside the provider (CQ error EIO,
# fi_accept EIO, or a refused connect); nnofi redials, but what was queued
# on the broken pipe is lost, as on any broken connection.
SOCKETS_CONNECT_RACE = ("libfabric's sockets provider (deprecated upstream in favour of tcp) "
                        "breaks about 1 in 100 connections set up at the same moment to one "
                        "listener; see README, providers")
