"""The four ways to have lab nodes: local processes, network namespaces,
Docker containers, ssh hosts."""
from .base import Backend


def get(name: str) -> Backend:
    if name == "local":
        from .local import LocalBackend
        return LocalBackend()
    if name == "netns":
        from .netns import NetnsBackend
        return NetnsBackend()
    if name == "docker":
        from .docker import DockerBackend
        return DockerBackend()
    if name == "ssh":
        from .ssh import SshBackend
        return SshBackend()
    raise ValueError(f"no backend {name!r}: local, netns, docker or ssh")


__all__ = ["Backend", "get"]
