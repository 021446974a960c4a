"""`make images`: the images of the compose stack, built on a Docker engine that reaches no registry.

- local/python-base:bookworm: Debian bookworm with Python 3.11, made by debootstrap and `docker import`ed.
- eureka-registrator:local: every component and the RQ dashboard (the command picks which), and
  eureka-registrator-dev-eureka:local: the same, running the dev Eureka. Built from wheels made here with
  pip against constraints.txt; `docker build` installs them with no network at all.
- local/redis:7: Debian's redis-server on the base image.

The engine is DOCKER_HOST's (default: the local one). BASE_IMAGE=<image> builds the project's image on
another base (any with Python 3.11 and venv, e.g. python:3.11-slim-bookworm where a registry answers);
the debootstrap base and the Redis image are then not made. The debootstrap root is made once and kept
under build/ (about 40 s); an engine that already has an image of it is left alone.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import docker

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
CONSTRAINTS = REPO / "constraints.txt"

LOCAL_BASE_IMAGE = "local/python-base:bookworm"
PROJECT_IMAGE = "eureka-registrator:local"
DEV_EUREKA_IMAGE = "eureka-registrator-dev-eureka:local"
REDIS_IMAGE = "local/redis:7"

DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Debian bookworm's own Python, the interpreter of the base image: wheels made with it carry the
# dependencies its environment markers ask for (redis wants async-timeout below Python 3.11.3).
DEBIAN_PYTHON = "/usr/bin/python3"
WHEEL_VENV = BUILD / "wheel-venv"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
ROOTFS_TAR = BUILD / "python-base-bookworm.tar"
REDIS_DEBS = BUILD / "redis-debs"
# Marks an imported base image with the root file system it came from.
ROOTFS_LABEL = "eureka-registrator.rootfs"
# Left out of the base image: package lists, downloaded packages, documentation, translations.
TRIMMED = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
           "usr/share/locale")


def log(message: str) -> None:
    print(f"images: {message}", flush=True)


@contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """One builder at a time per build folder (test sessions and `make images` may overlap)."""
    BUILD.mkdir(exist_ok=True)
    with (BUILD / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _remove_tree(directory: Path) -> None:
    """Remove a folder, unmounting first what an interrupted debootstrap may have left mounted in it."""
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        fields = line.split()
        if len(fields) > 1 and fields[1].startswith(f"{directory}/"):
            subprocess.run(["umount", "--lazy", fields[1]], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def base_rootfs() -> Path:
    """The debootstrap root as a tar, and the Redis packages it lacks in REDIS_DEBS: made once, kept in build/."""
    with _exclusive("rootfs"):
        if ROOTFS_TAR.exists() and REDIS_DEBS.exists():
            return ROOTFS_TAR
        root = BUILD / "rootfs"
        _remove_tree(root)
        log(f"debootstrap of Debian bookworm with {BASE_PACKAGES} (about 40 s)")
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(root),
                        DEBIAN_MIRROR], check=True, stdout=subprocess.DEVNULL)
        archives = root / "var/cache/apt/archives"
        for package in archives.glob("*.deb"):
            package.unlink()
        # Redis's packages, fetched by the root's own apt so they fit it; installed later by `docker build`.
        subprocess.run(["chroot", str(root), "apt-get", "install", "-y", "-qq", "--download-only",
                        "--no-install-recommends", "redis-server"], check=True, stdout=subprocess.DEVNULL)
        debs = BUILD / "redis-debs.tmp"
        shutil.rmtree(debs, ignore_errors=True)
        debs.mkdir()
        for package in archives.glob("*.deb"):
            shutil.move(package, debs / package.name)
        for trimmed in TRIMMED:
            for entry in (root / trimmed).glob("*"):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        partial = ROOTFS_TAR.with_suffix(".tmp")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        _remove_tree(root)
        shutil.rmtree(REDIS_DEBS, ignore_errors=True)
        debs.rename(REDIS_DEBS)
        partial.rename(ROOTFS_TAR)
        return ROOTFS_TAR


def import_base(client: docker.DockerClient) -> None:
    rootfs = base_rootfs()
    stamp = f"{rootfs.stat().st_size}-{rootfs.stat().st_mtime_ns}"
    try:
        if client.images.get(LOCAL_BASE_IMAGE).labels.get(ROOTFS_LABEL) == stamp:
            return
    except docker.errors.ImageNotFound:
        pass
    log(f"importing {LOCAL_BASE_IMAGE}")
    repository, tag = LOCAL_BASE_IMAGE.split(":")
    client.api.import_image_from_file(str(rootfs), repository=repository, tag=tag,
                                      changes=[f"LABEL {ROOTFS_LABEL}={stamp}", "ENV LANG=C.UTF-8",
                                               'CMD ["/bin/bash"]'])


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    if not (WHEEL_VENV / "bin" / "pip").exists():
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(WHEEL_VENV)], check=True)
    subprocess.run([str(WHEEL_VENV / "bin" / "pip"), "-q", *args], check=True, cwd=REPO,
                   env={**os.environ, "PIP_CONSTRAINT": str(CONSTRAINTS), **(env or {})})


def image_context() -> Path:
    """The project image's build context: `wheels/` for the dependencies at their pinned versions and
    `project/` for the project's own wheel.

    The dependencies' wheels are made once per constraints file; the project's own is made each time,
    offline and byte for byte the same for the same sources, so Docker's layer cache holds.
    """
    with _exclusive("wheels"):
        key = hashlib.sha256(CONSTRAINTS.read_bytes() + (REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
        dependencies = BUILD / "wheels" / f"dependencies-{key}"
        backend = dependencies / "build-backend"
        if not dependencies.exists():
            log("building the dependencies' wheels")
            partial = dependencies.with_suffix(".tmp")
            shutil.rmtree(partial, ignore_errors=True)
            _pip("wheel", "-w", str(partial), ".[dashboard]")
            for own in partial.glob("eureka_registrator-*.whl"):
                own.unlink()
            # setuptools, so that the project's own wheel is then made offline.
            _pip("wheel", "-w", str(partial / backend.name), "setuptools")
            partial.rename(dependencies)
        context = BUILD / "image"
        shutil.rmtree(context, ignore_errors=True)
        (context / "wheels").mkdir(parents=True)
        for wheel in dependencies.glob("*.whl"):
            os.link(wheel, context / "wheels" / wheel.name)
        # setuptools builds in build/lib and leaves what it copied there: a stale module would end up in the wheel.
        shutil.rmtree(BUILD / "lib", ignore_errors=True)
        _pip("wheel", "--no-deps", "--no-index", "--find-links", str(backend), "-w", str(context / "project"), ".",
             env={"SOURCE_DATE_EPOCH": "315532800"})
        return context


def _build(client: docker.DockerClient, context: Path, tag: str, **options: object) -> None:
    log(f"building {tag}")
    try:
        client.images.build(path=str(context), tag=tag, rm=True, forcerm=True, network_mode="none", **options)
    except docker.errors.BuildError as err:
        output = "".join(str(step.get("stream", step.get("error", ""))) for step in err.build_log)
        raise SystemExit(f"images: building {tag} failed: {err}\n{output}") from None


def build_project(client: docker.DockerClient, base_image: str, context: Path) -> None:
    shutil.copy(REPO / "Dockerfile", context / "Dockerfile")
    _build(client, context, PROJECT_IMAGE, target="registrator", buildargs={"BASE_IMAGE": base_image})
    _build(client, context, DEV_EUREKA_IMAGE, target="dev-eureka", buildargs={"BASE_IMAGE": base_image})


def build_redis(client: docker.DockerClient) -> None:
    context = BUILD / "redis-image"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(REDIS_DEBS, context / "debs")
    shutil.copy(REPO / "deploy" / "redis" / "Dockerfile", context / "Dockerfile")
    _build(client, context, REDIS_IMAGE, buildargs={"BASE_IMAGE": LOCAL_BASE_IMAGE})


def build_all(docker_host: str, base_image: str = LOCAL_BASE_IMAGE) -> None:
    client = docker.DockerClient(base_url=docker_host, timeout=600)
    try:
        with ThreadPoolExecutor(1) as pool:
            context = pool.submit(image_context)  # pip's work, while debootstrap and Docker do theirs
            if base_image == LOCAL_BASE_IMAGE:
                import_base(client)
                build_redis(client)
            build_project(client, base_image, context.result())
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    docker_host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    build_all(docker_host, os.environ.get("BASE_IMAGE") or LOCAL_BASE_IMAGE)
    log(f"done on {docker_host}")


if __name__ == "__main__":
    main()
