"""docker: every node is a container nnofi-LAB-nodeN of nnofi-node:latest
(`sleep infinity`) on the network nnofi-LAB with a fixed subnet and
address, memlock unlimited (libfabric registers memory), NET_ADMIN for
fault injection. The engine is driven through the `docker` SDK; node
processes run under `docker exec -i`. `up` also gives every container the
lab's ssh key and starts its sshd, so the ssh backend can be tested on the
same containers (topology laptop-ssh)."""
from __future__ import annotations

import os
import subprocess
import time

from .base import MARK, NODE_MARK, Backend, repo_root, sh, state_dir

LABEL = "org.nnofi.lab"


def container_name(topo, node) -> str:
    return f"nnofi-{topo.name}-{node.name}"


def network_name(topo) -> str:
    return f"nnofi-{topo.name}"


def _memlock_text() -> str:
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"


def _client():
    import docker
    c = docker.from_env(timeout=60)
    c.ping()
    return c


def ssh_key(lab: str, log=None) -> str:
    """The lab's key pair (build/lab/LAB/id_ed25519), made on first use;
    returns the private key's path. Also writes build/lab/LAB/ssh_config."""
    d = state_dir(lab)
    key = d / "id_ed25519"
    if not key.exists():
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"nnofi-lab-{lab}", "-f", str(key)])
        if log:
            log(f"  made the lab's ssh key {key}")
    (d / "ssh_config").write_text(
        "# written by `python -m nnofi_lab up`: how the lab's ssh gateways dial its nodes\n"
        "Host *\n"
        "  User root\n"
        f"  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
        "  BatchMode yes\n"
        "  ConnectTimeout 10\n"
        "  ServerAliveInterval 5\n"
        "  ServerAliveCountMax 3\n")
    return str(key)


class DockerBackend(Backend):
    name = "docker"

    def unavailable(self):
        try:
            import docker  # noqa: F401
        except ImportError:
            return "the `docker` Python package is missing (pip install '.[lab]')"
        try:
            _client()
        except Exception as e:  # noqa: BLE001 - DockerException, connection errors
            return f"no Docker engine ({str(e).splitlines()[0][:160]})"
        return None

    def _image(self, c, image, log):
        """Build or refresh the lab's images from this tree (`make images`
        skips what is up to date in a second), so the nodes run the code
        under test; outside a checkout, the image must be there."""
        import docker
        root = repo_root()
        script = root / "docker" / "build-images.sh" if root else None
        if script and script.exists():
            log("  images: `make images` (several minutes the first time, a second when up to date)")
            r = subprocess.run(["make", "-s", "-C", str(root), "images"], timeout=3600)
            if r.returncode != 0:
                raise RuntimeError(f"`make images` failed ({r.returncode}); see build/lab/*.log")
        try:
            c.images.get(image)
        except docker.errors.ImageNotFound:
            raise RuntimeError(f"image {image} not found, and no docker/build-images.sh to build it "
                               "(nothing can be pulled here)") from None

    def _network(self, c, topo, log):
        import docker
        name = network_name(topo)
        try:
            net = c.networks.get(name)
            subnets = [cfg.get("Subnet") for cfg in (net.attrs.get("IPAM", {}).get("Config") or [])]
            if topo.subnet not in subnets:
                raise RuntimeError(f"network {name} exists with subnet(s) {subnets}, not {topo.subnet}: "
                                   f"`docker network rm {name}` or change the topology")
            return net
        except docker.errors.NotFound:
            pass
        import ipaddress
        gw = str(next(ipaddress.IPv4Network(topo.subnet).hosts()))
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=topo.subnet, gateway=gw)])
        try:
            net = c.networks.create(name, driver="bridge", ipam=ipam, labels={LABEL: topo.name})
        except docker.errors.APIError as e:
            raise RuntimeError(f"cannot create network {name} ({topo.subnet}): {e.explanation}") from None
        log(f"  network {name} {topo.subnet}")
        return net

    def up(self, topo, log, rxe=False):
        import docker
        why = self.unavailable()
        if why:
            raise RuntimeError(f"docker backend: {why}")
        c = _client()
        self._image(c, topo.image, log)
        self._network(c, topo, log)
        rxe_why = None
        if rxe:
            from ..rxe import rxe_unavailable
            rxe_why = rxe_unavailable()
            log(f"  RXE=1: no rxe devices: {rxe_why}; verbs tests will skip" if rxe_why else
                "  RXE=1: the host kernel has rdma_rxe: making rxe0 on every node")
        want_rxe = rxe and rxe_why is None
        memlock = -1  # unlimited, unless the engine may not set it
        for n in topo.nodes:
            name = container_name(topo, n)
            try:
                old = c.containers.get(name)
                ip = old.attrs["NetworkSettings"]["Networks"].get(network_name(topo), {}).get("IPAddress")
                if old.status == "running" and ip == n.address and old.image.tags and topo.image in old.image.tags:
                    continue
                log(f"  replacing {name} ({old.status}, {ip or 'no address'})")
                old.remove(force=True)
            except docker.errors.NotFound:
                pass
            spec = dict(name=name, hostname=n.name, labels={LABEL: topo.name, f"{LABEL}.node": n.name},
                        cap_add=["NET_ADMIN"] + (["SYS_ADMIN"] if want_rxe else []),
                        devices=["/dev/infiniband:/dev/infiniband"] if want_rxe and os.path.isdir("/dev/infiniband") else None)
            try:
                self._create(c, topo, n, memlock=memlock, **spec)
            except docker.errors.APIError as e:
                if memlock is None or "rlimit type 8" not in str(e):
                    raise RuntimeError(f"cannot start {name}: {e.explanation}") from None
                c.containers.get(name).remove(force=True)
                memlock = None
                log(f"  memlock: this host cannot raise the locked-memory limit ({e.explanation.split(': ')[-2]}; "
                    f"no CAP_SYS_RESOURCE here), so the containers keep the engine's {_memlock_text()} "
                    "instead of unlimited")
                self._create(c, topo, n, memlock=None, **spec)
            log(f"  container {name} {n.address}")
        self._ssh(c, topo, log)
        if want_rxe:
            for n in topo.nodes:
                r = c.containers.get(container_name(topo, n)).exec_run(
                    ["sh", "-c", "rdma link show rxe0 >/dev/null 2>&1 || rdma link add rxe0 type rxe netdev eth0"])
                log(f"  {n.name}: rxe0 " + ("ready" if r.exit_code == 0 else
                                            f"failed: {r.output.decode(errors='replace').strip()}"))

    def _create(self, c, topo, n, name, hostname, labels, cap_add, devices, memlock):
        import docker
        host_config = c.api.create_host_config(
            network_mode=network_name(topo),
            ulimits=[docker.types.Ulimit(name="memlock", soft=memlock, hard=memlock)] if memlock else None,
            cap_add=cap_add, devices=devices, init=True, shm_size="1g")
        netcfg = c.api.create_networking_config(
            {network_name(topo): c.api.create_endpoint_config(ipv4_address=n.address)})
        cid = c.api.create_container(topo.image, command=["sleep", "infinity"], name=name, hostname=hostname,
                                     detach=True, labels=labels, host_config=host_config,
                                     networking_config=netcfg)["Id"]
        c.api.start(cid)

    def _ssh(self, c, topo, log):
        """The lab's public key into each container, and sshd started."""
        key = ssh_key(topo.name, log)
        pub = open(key + ".pub").read().strip()
        started = []
        for n in topo.nodes:
            ct = c.containers.get(container_name(topo, n))
            r = ct.exec_run(["sh", "-c",
                             "test -x /usr/sbin/sshd || { echo no sshd; exit 3; }; "
                             "mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh && "
                             f"printf '%s\\n' '{pub}' > /root/.ssh/authorized_keys && "
                             "chmod 600 /root/.ssh/authorized_keys && "
                             "{ ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -A; } && "
                             "{ pgrep -x sshd >/dev/null 2>&1 || /usr/sbin/sshd; }"])
            if r.exit_code == 3:
                log(f"  {n.name}: the image has no sshd; the ssh backend cannot use this lab")
                return
            if r.exit_code != 0:
                log(f"  {n.name}: sshd not started: {r.output.decode(errors='replace').strip()}")
                continue
            started.append(n.name)
        if started:
            log(f"  sshd on {', '.join(started)} (key {key})")

    def down(self, topo, log):
        import docker
        try:
            c = _client()
        except Exception as e:  # noqa: BLE001
            log(f"  no Docker engine ({e}); nothing to remove")
            return
        for ct in c.containers.list(all=True, filters={"label": f"{LABEL}={topo.name}"}):
            ct.remove(force=True)
            log(f"  removed container {ct.name}")
        for net in c.networks.list(names=[network_name(topo)]):
            if net.name == network_name(topo):
                try:
                    net.remove()
                    log(f"  removed network {net.name}")
                except docker.errors.APIError as e:
                    raise RuntimeError(f"cannot remove network {net.name}: {e.explanation}") from None

    def status(self, topo):
        import docker
        rows = []
        try:
            c = _client()
        except Exception as e:  # noqa: BLE001
            return [{"node": n.name, "address": n.address, "state": "down", "detail": f"no Docker engine: {e}"}
                    for n in topo.nodes]
        for n in topo.nodes:
            name = container_name(topo, n)
            try:
                ct = c.containers.get(name)
            except docker.errors.NotFound:
                rows.append({"node": n.name, "address": n.address, "state": "down", "detail": f"no container {name}"})
                continue
            ip = ct.attrs["NetworkSettings"]["Networks"].get(network_name(topo), {}).get("IPAddress")
            ok = ct.status == "running" and ip == n.address
            rows.append({"node": n.name, "address": n.address, "state": "up" if ok else "broken",
                         "detail": f"container {name} {ct.status}" + ("" if ip == n.address else f", address {ip}")})
        return rows

    def gateway_spec(self, topo, node):
        return (f"popen//python=docker exec -i -e {MARK}={topo.name} -e {NODE_MARK}={node.name} "
                f"{container_name(topo, node)} {node.python or topo.python or 'python3'}")

    # -- faults: nft and tc in the container (it has NET_ADMIN); a stopped
    # node is a killed container, started again with its address and disk
    def net_unavailable(self, topo):
        return None

    def node_exec(self, topo, node, argv, input=None, timeout=30):
        return sh(["docker", "exec", "-i", container_name(topo, node)] + argv,
                  check=False, timeout=timeout, input=input)

    def stop_node(self, topo, node):
        name = container_name(topo, node)
        sh(["docker", "kill", name])
        self._wait_state(name, "false")

    def start_node(self, topo, node):
        name = container_name(topo, node)
        sh(["docker", "start", name])
        self._wait_state(name, "true")
        # sshd for the ssh lab on these containers (its key is still on disk)
        self.node_exec(topo, node, ["sh", "-c", "test ! -x /usr/sbin/sshd || pgrep -x sshd >/dev/null || /usr/sbin/sshd"])

    def freeze_node(self, topo, node):
        sh(["docker", "pause", container_name(topo, node)])

    def thaw_node(self, topo, node):
        sh(["docker", "unpause", container_name(topo, node)])

    @staticmethod
    def _wait_state(name, running, timeout=30.0):
        deadline = time.monotonic() + timeout
        while sh(["docker", "inspect", "-f", "{{.State.Running}}", name]).stdout.strip() != running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"container {name}: State.Running is not {running} after {timeout}s")
            time.sleep(0.05)

    def testinfra_host(self, topo, node):
        import testinfra
        return testinfra.get_host(f"docker://{container_name(topo, node)}")
