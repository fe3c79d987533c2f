"""Helpers to run Tawasul's real processes in tests: free ports, waiting for a port, a child process."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing


def run_async(coroutine):
    """asyncio.run on a thread of its own: the browser tests keep an event loop running on the
    main thread for the whole session, where asyncio.run would refuse to start."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_for(check, timeout: float, what: str, interval: float = 0.2):
    """check()'s first truthy value, polled until `timeout` seconds; else an AssertionError saying what."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(interval)


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def tawasul(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    """Start `tawasul ARGS` as a child in its own process group."""
    return subprocess.Popen([sys.executable, "-m", "tawasul", *args], env={**os.environ, **env},
                            start_new_session=True, **kwargs)


def stop(process: subprocess.Popen, timeout: float = 15) -> int:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode
