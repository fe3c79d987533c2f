"""Provisioning: render + validate + write + reload time for 10, 100 and 1,000 devices, against a
running Asterisk, and the calls a reload drops while 20 calls are up (must be 0).

One throwaway Asterisk instance (free ports, settings.load_test on for SIPp). The database grows
from the demo region (9 centre phones and the governor's desk) to 10, 100 and 1,000 centre
phones over up to 50 centres; after each step `provisioning.apply.apply` runs end to end (the
same call `tawasul provision apply` makes): load rows, render, validate, write what changed, AMI
reloads (`Reload pbx_config` when the dialplan changed, `module reload res_pjsip.so`). Its parts
are timed on their own right after (load rows, render, validate: the pure steps, best of 3) and
the reload inside apply() through a timing AMI sender; "write + audit" is what is left. Asterisk's
endpoint count is checked after each apply.

Reload under live calls: SIPp (benchmarks/sipp/uac_hold.xml) from 127.0.0.2 places 20 calls to
`static-hold` (answered, held 30 s, then Asterisk hangs up); once all 20 are up, a change that
touches both pjsip.conf and extensions.conf (a second governor's desk, one more phone) is applied.
A dropped call is a failed call or one that Asterisk hung up before 29 s.

`python -m benchmarks provisioning --quick` (or BENCH_QUICK=1): 10 and 100 devices only.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import sipp as S

SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
MAX_CENTRES = 50
LIVE_CALLS = 20
HOLD_SECONDS = 30  # the static-hold extension's Wait()
RTP = (45000, 45999)


def grow(db, settings, phones: int, desks: int = 1) -> None:
    """Add centres (up to MAX_CENTRES) and centre phones until there are `phones` of them, and
    governor's desks until there are `desks`."""
    import sqlalchemy as sa

    from tawasul.models import Centre, Device, DeviceKind, Governorate, Region
    from tawasul.vault import Vault, new_sip_secret

    vault = Vault.for_settings(settings)
    with db.write() as session:
        region = session.scalars(sa.select(Region)).one()
        centres = list(session.scalars(sa.select(Centre).order_by(Centre.id)))
        have = session.scalar(sa.select(sa.func.count(Device.id)).where(Device.kind == DeviceKind.CENTRE_PHONE))
        while len(centres) < min(MAX_CENTRES, phones):
            code = f"C{len(centres) + 1:02d}"
            centre = Centre(governorate=Governorate(region=region, code=code, name_ar=code, name_en=code),
                            code=code, name_ar=f"مركز {code}", name_en=f"Centre {code}",
                            allowed_networks="127.0.0.0/8")
            session.add(centre)
            centres.append(centre)
        session.flush()
        for n in range(have, phones):
            centre = centres[n % len(centres)]
            session.add(Device(kind=DeviceKind.CENTRE_PHONE, centre=centre, label=f"{centre.code} phone {n}",
                               sip_user=f"phone-{n:05d}", secret_encrypted=vault.encrypt(new_sip_secret())))
        have_desks = session.scalar(sa.select(sa.func.count(Device.id)).where(Device.kind == DeviceKind.GOVERNOR_DESK))
        for n in range(have_desks, desks):
            session.add(Device(kind=DeviceKind.GOVERNOR_DESK, label=f"Governor's desk {n + 1}",
                               sip_user=f"governor-desk-{n + 1}", secret_encrypted=vault.encrypt(new_sip_secret())))


def endpoint_count(instance) -> int:
    out = instance.runtime.cli("pjsip show endpoints", timeout=30)
    for line in out.splitlines():
        if line.startswith("Objects found:"):
            return int(line.split(":")[1])
    return 0


def timed_apply(instance):
    """apply() end to end, with the AMI reload inside it timed. Returns (result, total s, reload s)."""
    from provisioning.apply import ami_sender, apply

    reload_seconds = []

    def sender(settings, secret, actions):
        started = time.perf_counter()
        try:
            return ami_sender(settings, secret, actions)
        finally:
            reload_seconds.append(time.perf_counter() - started)

    started = time.perf_counter()
    result = apply(instance.settings, instance.db, instance.runtime, "bench", sender=sender)
    total = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"apply failed: {result.errors}")
    return result, total, sum(reload_seconds)


def parts(instance) -> dict[str, float]:
    """The pure steps of apply(), each timed on its own (best of 3)."""
    from provisioning import render
    from provisioning.apply import load
    from provisioning.validate import validate

    rt, settings = instance.runtime, instance.settings
    timings: dict[str, list[float]] = {"load rows": [], "render": [], "validate": []}
    layout, secret = rt.layout(), rt.ami_secrets()
    for _ in range(3):
        t0 = time.perf_counter()
        rows = load(settings, instance.db)
        t1 = time.perf_counter()
        files = render.render_all(settings, rows, secret, layout)
        t2 = time.perf_counter()
        errors = validate(files, load_test=settings.load_test)
        t3 = time.perf_counter()
        assert not errors, errors
        timings["load rows"].append(t1 - t0)
        timings["render"].append(t2 - t1)
        timings["validate"].append(t3 - t2)
    return {name: min(values) for name, values in timings.items()}


def main() -> None:
    sizes = QUICK_SIZES if S.quick() else SIZES
    started = time.monotonic()
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="bench-prov-") as tmp:
        tmp = Path(tmp)

        def seed(session, settings):
            from tawasul import demo
            demo.seed(session, settings)

        with S.asterisk_instance(tmp, RTP, seed=seed) as instance:
            print(f"Asterisk ready in {time.monotonic() - started:.1f} s{'  (QUICK: small run)' if S.quick() else ''}",
                  flush=True)
            for size in sizes:
                grow(instance.db, instance.settings, size)
                result, total, reload = timed_apply(instance)
                pieces = parts(instance)
                endpoints = endpoint_count(instance)
                rest = max(0.0, total - reload - sum(pieces.values()))
                rows_out.append((size, total, pieces, reload, rest, endpoints, result))
                print(f"  {size:5d} devices: apply {total:6.3f} s = load rows {pieces['load rows']:.3f} + render "
                      f"{pieces['render']:.3f} + validate {pieces['validate']:.3f} + reload {reload:.3f} "
                      f"+ write/audit {rest:.3f}; reloaded: {', '.join(result.reloaded)}; Asterisk has "
                      f"{endpoints} endpoints (devices + desk + load)", flush=True)

            # Reload under live calls.
            print(f"-- {LIVE_CALLS} live calls (static-hold, {HOLD_SECONDS} s) while apply reloads", flush=True)
            import threading

            holder: dict = {}
            thread = threading.Thread(target=lambda: holder.setdefault("r", S.run_sipp(
                instance.settings, tmp, "hold", ["static-hold"], LIVE_CALLS, LIVE_CALLS,
                scenario=S.HOLD_SCENARIO, limit=LIVE_CALLS, timeout=HOLD_SECONDS + 40,
                recv_timeout_ms=(HOLD_SECONDS + 20) * 1000)))
            thread.start()
            deadline = time.monotonic() + 15
            up = 0
            while time.monotonic() < deadline:
                up = instance.channels()
                if up >= LIVE_CALLS:
                    break
                time.sleep(0.2)
            grow(instance.db, instance.settings, sizes[-1] + 1, desks=2)  # pjsip.conf and extensions.conf change
            result, total, reload = timed_apply(instance)
            after = instance.channels()
            thread.join(HOLD_SECONDS + 60)
            hold = holder.get("r")
    if hold is None:
        raise RuntimeError("the SIPp hold run did not finish")
    cut_short = sum(1 for ms in hold.held_ms if ms < (HOLD_SECONDS - 1) * 1000)
    dropped = (LIVE_CALLS - hold.successful) + cut_short
    print(f"  calls up before the reload: {up}, right after: {after}; apply {total:.3f} s "
          f"(reload {reload:.3f} s; reloaded: {', '.join(result.reloaded)})")
    held = sorted(hold.held_ms)
    print(f"  SIPp: {hold.successful}/{LIVE_CALLS} calls completed, {hold.calls - hold.successful} failed, "
          f"{cut_short} ended early; call length {held[0] / 1000 if held else 0:.1f}-"
          f"{held[-1] / 1000 if held else 0:.1f} s (mean {statistics.mean(held) / 1000 if held else 0:.1f} s)")
    print(f"  calls dropped by the reload: {dropped}")
    biggest = rows_out[-1]
    print("== targets" + (" (QUICK mode: 1,000 devices not run)" if S.quick() else ""))
    if not S.quick():
        print(f"  [{'pass' if biggest[1] < 5 else 'FAIL'}] {biggest[0]} devices applied in under 5 s "
              f"({biggest[1]:.2f} s)")
    for size, _total, _pieces, _reload, _rest, endpoints, _result in rows_out:
        if endpoints != size + 2:
            print(f"  [FAIL] {size} devices: Asterisk shows {endpoints} endpoints, expected {size + 2}")
    print(f"  [{'pass' if dropped == 0 and up >= LIVE_CALLS else 'FAIL'}] no call dropped by a reload under "
          f"{LIVE_CALLS} live calls ({dropped} dropped, {up} were up)")
    print(f"  total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    if "--quick" in sys.argv:
        os.environ["BENCH_QUICK"] = "1"
    main()
