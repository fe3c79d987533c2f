"""What the SIP load benchmarks share: a throwaway Asterisk instance with the load-test entry on,
and SIPp runs from 127.0.0.2 whose figures are read from SIPp's own trace files.

Only loopback is ever loaded: SIPp binds 127.0.0.2 and sends to Asterisk's UDP transport on
127.0.0.1. Every run is bounded by a call count, a rate, a concurrency limit and a timeout.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETUP_SCENARIO = HERE / "uac_setup.xml"
HOLD_SCENARIO = HERE / "uac_hold.xml"
SIPP_ADDRESS = "127.0.0.2"  # the load endpoint's identify match (provisioning.render.LOAD_ADDRESS)


def quick() -> bool:
    """Smoke mode (`BENCH_QUICK=1`, or `--quick` on the command line): small, under a minute."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on `host`."""
    for _ in range(50):
        with contextlib.closing(socket.socket()) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise OSError("no free port")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 60, busy: float = 0.05) -> None:
    """Wait until a process uses under `busy` of a core over half a second (at most `timeout` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < busy * 0.5:
            return


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


# --------------------------------------------------------------------------- Asterisk instance


@dataclasses.dataclass
class Instance:
    settings: object
    runtime: object
    db: object

    def apply(self):
        from provisioning.apply import apply

        result = apply(self.settings, self.db, self.runtime, "bench")
        if not result.ok:
            raise RuntimeError(f"provision apply failed: {result.errors}")
        return result

    def restart(self) -> None:
        """A fresh Asterisk (stopped, started, provisioned again): what an overload step leaves behind
        (backlog, grown memory) would otherwise weigh on the next run for minutes."""
        self.runtime.stop()
        self.runtime.start(timeout=60)
        self.apply()

    def channels(self) -> int:
        out = self.runtime.cli("core show channels count", timeout=10)
        for line in out.splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        return 0


@contextlib.contextmanager
def asterisk_instance(folder: Path, rtp: tuple[int, int], seed=None):
    """A running Asterisk for a fresh state folder (free ports, load_test on, TLS certificates),
    with its database seeded by `seed(session, settings)`, provisioned. Stopped and destroyed after."""
    from provisioning import certs
    from provisioning import runtime as asterisk_runtime
    from tawasul.db import Database, upgrade
    from tawasul.settings import Settings

    values = dict(
        state_dir=folder / "state", demo=True, load_test=True,
        ami_port=free_port(), sip_udp_port=free_port(), sip_tls_port=free_port(), agi_port=free_port(),
        rtp_start=rtp[0], rtp_end=rtp[1],
    )
    if os.environ.get("TAWASUL_ASTERISK_CACHE"):
        values["asterisk_cache"] = Path(os.environ["TAWASUL_ASTERISK_CACHE"])
    settings = dataclasses.replace(Settings(), **values)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    rt = None
    try:
        if seed is not None:
            with db.write() as session:
                seed(session, settings)
        rt = asterisk_runtime.ensure_installed(settings)
        certs.ensure_certificates(settings)
        rt.start(timeout=60)
        instance = Instance(settings, rt, db)
        instance.apply()
        yield instance
    finally:
        if rt is not None:
            try:
                rt.stop()
            finally:
                rt.destroy()
        db.dispose()


# --------------------------------------------------------------------------- SIPp


@dataclasses.dataclass
class SippResult:
    label: str
    offered_rate: float
    calls: int            # calls asked for
    created: int
    successful: int
    failed: int
    elapsed: float        # seconds, first call to the end of the run
    setup_ms: list[float]  # response time 1 of every successful call (INVITE -> 200 OK)
    held_ms: list[float]  # response time 2 (hold scenario: ACK -> BYE from Asterisk)
    exit_code: int

    answered_at: list[float] = dataclasses.field(default_factory=list)  # s since start, each 200 OK

    @property
    def rate(self) -> float:
        """Calls/s actually completed: successful calls over the span of their 200 OKs (one call
        per offered interval added, so a run of N calls at R/s reads R/s when it kept up)."""
        if self.successful < 2 or len(self.answered_at) < 2:
            return self.successful / self.elapsed if self.elapsed > 0 else 0.0
        span = max(self.answered_at) - min(self.answered_at) + 1 / self.offered_rate
        return self.successful / span

    @property
    def failure_ratio(self) -> float:
        return (self.calls - self.successful) / self.calls if self.calls else 0.0

    def mean_ms(self) -> float:
        return statistics.mean(self.setup_ms) if self.setup_ms else float("nan")

    def p99_ms(self) -> float:
        return percentile(self.setup_ms, 99)

    def line(self) -> str:
        return (f"{self.label:<10} offered {self.offered_rate:5g}/s x {self.calls:5d}: held {self.rate:6.1f} calls/s, "
                f"failed {self.calls - self.successful:4d} ({self.failure_ratio * 100:.2f}%), set-up mean "
                f"{self.mean_ms():7.2f} ms p99 {self.p99_ms():7.2f} ms")


def _seconds(text: str) -> float:
    # SIPp's ElapsedTime: "HH:MM:SS:uuuuuu"
    parts = [float(p) for p in text.strip().split(":")]
    return parts[0] * 3600 + parts[1] * 60 + parts[2] + (parts[3] / 1e6 if len(parts) > 3 else 0)


def run_sipp(settings, workdir: Path, label: str, services: list[str], rate: float, calls: int, *,
             scenario: Path = SETUP_SCENARIO, limit: int = 3000, timeout: float | None = None,
             recv_timeout_ms: int = 32000) -> SippResult:
    """Place `calls` calls at `rate` calls/s from 127.0.0.2, the extensions taken in turn from
    `services`. Bounded: -m calls, -l limit, -timeout. Returns SIPp's figures."""
    sipp = shutil.which("sipp")
    if not sipp:
        raise RuntimeError("sipp is not installed (Debian package sip-tester)")
    run_dir = workdir / f"sipp-{label}-{int(rate)}-{time.monotonic_ns()}"
    run_dir.mkdir(parents=True)
    inf = run_dir / "services.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{s};\n" for s in services))
    timeout = timeout or (calls / rate + 45)
    args = [
        sipp, f"127.0.0.1:{settings.sip_udp_port}", "-sf", str(scenario), "-inf", str(inf),
        "-i", SIPP_ADDRESS, "-p", str(free_port(SIPP_ADDRESS)), "-mp", str(free_port(SIPP_ADDRESS)),
        *(["-r", f"{rate:g}"] if rate >= 1 else ["-r", "1", "-rp", f"{int(1000 / rate)}ms"]),
        "-m", str(calls), "-l", str(limit),
        "-recv_timeout", str(recv_timeout_ms), "-timeout", f"{int(timeout)}s",
        "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "50" if calls % 50 == 0 else "1",
        "-trace_err", "-nostdin",
    ]
    with open(run_dir / "screen.log", "wb") as out:
        proc = subprocess.Popen(args, cwd=run_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    return _read_result(run_dir, label, rate, calls, code)


def _read_result(run_dir: Path, label: str, rate: float, calls: int, code: int) -> SippResult:
    created = successful = failed = 0
    elapsed = 0.0
    stat = run_dir / "stat.csv"
    if stat.is_file():
        rows = list(csv.reader(stat.read_text(errors="replace").splitlines(), delimiter=";"))
        if len(rows) >= 2:
            head, last = rows[0], rows[-1]
            row = dict(zip(head, last))
            created = int(row.get("TotalCallCreated", 0) or 0)
            successful = int(row.get("SuccessfulCall(C)", 0) or 0)
            failed = int(row.get("FailedCall(C)", 0) or 0)
            elapsed = _seconds(row.get("ElapsedTime(C)", "0") or "0")
    setup, held, answered = [], [], []
    for rtt in run_dir.glob("*_rtt.csv"):
        for line in rtt.read_text(errors="replace").splitlines():
            parts = line.strip().split(";")
            if len(parts) >= 3 and parts[1].replace(".", "", 1).isdigit():
                if parts[2].strip() == "1":
                    setup.append(float(parts[1]))
                    answered.append(float(parts[0]) / 1000)
                else:
                    held.append(float(parts[1]))
    return SippResult(label, rate, calls, created, successful, failed, elapsed, setup, held, code, answered)
