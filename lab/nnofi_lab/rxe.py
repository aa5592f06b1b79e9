"""Soft-RoCE (rdma_rxe): can this host give its lab nodes a verbs device?"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Optional


def rxe_unavailable() -> Optional[str]:
    """None if the kernel has rdma_rxe (loaded, or loadable), else why not."""
    if os.path.isdir("/sys/module/rdma_rxe"):
        return None
    release = platform.release()
    modprobe = shutil.which("modprobe") or ("/sbin/modprobe" if os.path.exists("/sbin/modprobe") else None)
    if modprobe:
        r = subprocess.run([modprobe, "-n", "rdma_rxe"], capture_output=True, text=True, timeout=10)
        if r.returncode == 0:
            return None
        detail = f"`modprobe -n rdma_rxe`: {(r.stderr or r.stdout).strip() or 'exit %d' % r.returncode}"
    elif not os.path.isdir(f"/lib/modules/{release}"):
        detail = f"no /lib/modules/{release} and no modprobe"
    else:
        detail = "no modprobe to load it"
    return f"the host kernel ({release}) has no rdma_rxe: /sys/module/rdma_rxe is absent, {detail}"
