"""A small local ``redis-server`` image, assembled with no registry.

The root filesystem is the ``redis-server`` binary the harness already uses
(``oversold.infra.redis_server.find_redis_binary``), the shared libraries ``ldd``
lists for it and the dynamic loader, plus an empty ``/tmp`` and ``/data``. It
is imported with ``docker import`` semantics (no base image, nothing pulled)
and carries the label ``oversold=1`` so it can be found and removed by label.

Usage::

    client = docker.from_env()
    image_id = build_redis_image(client, tag="oversold/redis:local")
    client.containers.run(image_id, ["--bind", "127.0.0.1", "--port", "7001"],
                          network_mode="host", detach=True, labels={"oversold.run": "r1"})
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping

import docker

from oversold.infra.redis_server import find_redis_binary

IMAGE_LABEL = "oversold"
DEFAULT_TAG = "oversold/redis:local"
BINARY_IN_IMAGE = "/usr/local/bin/redis-server"

_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def shared_libraries(binary: str) -> list[str]:
    """Absolute paths of the libraries (and loader) ``ldd`` lists for ``binary``; [] if it is static."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        if "not a dynamic executable" in (out.stdout + out.stderr):
            return []
        raise RuntimeError(f"ldd {binary} failed: {out.stderr.strip()}")
    paths = []
    for line in out.stdout.splitlines():
        m = _LDD_LINE.search(line)  # "libc.so.6 => /lib/.../libc.so.6 (0x..)" or "/lib64/ld-linux... (0x..)"
        if m and m.group(1) not in paths:
            paths.append(m.group(1))
    return paths


def rootfs_tar(binary: str, dest: Path) -> None:
    """Write a root filesystem tarball holding ``binary`` and what it needs to run."""
    with tarfile.open(dest, "w") as tar:
        for d, mode in (("tmp", 0o1777), ("data", 0o755), ("usr/local/bin", 0o755)):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(binary, arcname=BINARY_IN_IMAGE.lstrip("/"), recursive=False)
        for lib in shared_libraries(binary):
            # dereference: the image gets the real file under the name the loader asks for
            real = os.path.realpath(lib)
            info = tar.gettarinfo(real, arcname=lib.lstrip("/"))
            with open(real, "rb") as f:
                tar.addfile(info, f)


def binary_digest(binary: str) -> str:
    h = hashlib.sha256()
    with open(binary, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def build_redis_image(client: docker.DockerClient, *, tag: str = DEFAULT_TAG, binary: str | None = None,
                      labels: Mapping[str, str] | None = None) -> str:
    """Import a ``redis-server`` image under ``tag`` and return its id; reuse one built from the same binary."""
    binary = binary or find_redis_binary()
    digest = binary_digest(binary)
    try:
        existing = client.images.get(tag)
        if (existing.labels or {}).get("oversold.redis.binary") == digest:
            return existing.id
    except docker.errors.ImageNotFound:
        pass
    all_labels = {IMAGE_LABEL: "1", "oversold.redis.binary": digest, **dict(labels or {})}
    changes = [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in all_labels.items()]
    changes += [f'ENTRYPOINT ["{BINARY_IN_IMAGE}"]', "WORKDIR /data"]
    repo, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
    with tempfile.TemporaryDirectory(prefix="oversold-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        rootfs_tar(binary, tarball)
        with open(tarball, "rb") as f:
            client.api.import_image(src=f, repository=repo, tag=version, changes=changes)
    return client.images.get(tag).id
