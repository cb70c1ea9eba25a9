"""What the numbers were measured on: hardware, OS, and the versions that matter."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import asyncpg
from target_platform import PG_ADMIN_DSN

PACKAGES = (
    "uvicorn",
    "uvloop",
    "httptools",
    "fastapi",
    "starlette",
    "pydantic",
    "pywa",
    "httpx",
    "aiohttp",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "dramatiq",
    "redis",
)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


async def _postgres_version() -> str:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _redis_version() -> str:
    """The version of the `redis-server` the bench starts (e.g. "v=7.0.15" in its banner)."""
    server = shutil.which("redis-server")
    if server is None:
        return "not installed"
    done = subprocess.run(  # noqa: S603 - a fixed argv
        [server, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    for word in done.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return "?"


def machine_info() -> dict[str, object]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _memory_gib(),
        "os": f"{_os_name()} (kernel {platform.release()})",
        "python": sys.version.split()[0],
        "postgresql": asyncio.run(_postgres_version()),
        "redis": _redis_version(),
        "packages": {package: _version(package) for package in PACKAGES},
    }
