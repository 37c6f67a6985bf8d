"""Heating cell and syringe pump devices, temperature / anneal / injection plans, against the
simulated beamline (heating 10x faster than real time, see conftest).

The simulated cell heats in seconds but cools passively over minutes: the module is marked
``hot`` so it runs after every module that expects the sample at ambient (conftest).
"""
import math
import os

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.utils import ProgressBarManager

from conftest import wait_for

pytestmark = [pytest.mark.ioc, pytest.mark.hot]

SAMPLE = {"name": "CuInSe2 NCs", "size_nm": 7.0, "ligand": "oleylamine", "solvent": "dodecane",
          "sigma_cm2": 4e-14}
MD = {"sample": SAMPLE}
SETTLE_S = 0.5          # wall seconds in band (the model runs 10x faster)


def _restart_beamline(sim):
    """Restart the simulator on the same port and wait until every CA channel of this
    process that was connected is connected again."""
    import epics

    cache = getattr(epics.pv, "_PVcache_", {})
    pvs = [pv for pv in list(cache.values()) if pv.connected]
    sim.stop()
    sim.start()
    wait_for(lambda: all(pv.connected for pv in pvs), 60, period=0.1, what="CA channels reconnected")


@pytest.fixture(scope="module")
def devices(sim):
    from trxrd.acquisition.devices.detectors import PilatusDetector
    from trxrd.acquisition.devices.heating_cell import HeatingCell
    from trxrd.acquisition.devices.syringe_pump import SyringePump

    cell = HeatingCell(sim.prefix, name="cell", settle_time_s=SETTLE_S, tolerance_c=0.5, timeout_s=60.0)
    syringe = SyringePump(sim.prefix, name="syringe")
    waxs = PilatusDetector(sim.prefix + "PIL:", name="pilatus", write_dir=sim.waxs_dir)
    saxs = PilatusDetector(sim.prefix + "SAXS:", name="saxs", write_dir=sim.saxs_dir)
    for dev in (cell, syringe, waxs, saxs):
        dev.wait_for_connection(timeout=15)
    waxs.exposure_s = 0.05
    return cell, syringe, waxs, saxs


@pytest.fixture(scope="module")
def RE():
    return RunEngine({})


@pytest.fixture
def docs(RE):
    collected = []
    token = RE.subscribe(lambda name, doc: collected.append((name, doc)))
    yield collected
    RE.unsubscribe(token)


def _events(docs, stream="primary"):
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [d for n, d in docs if n == "event" and names[d["descriptor"]] == stream]


def _descriptor(docs, stream="primary"):
    return next(d for n, d in docs if n == "descriptor" and d["name"] == stream)


# -- heating cell ------------------------------------------------------------------------------
@pytest.mark.slow
def test_move_done_only_after_settle_time_in_band(sim, ca, devices, RE):
    cell = devices[0]
    tc = sim.prefix + "TC:"
    start = ca.caget(tc + "Temperature_RBV")
    target = round(start) + 15.0
    history = []                                        # independent client, server time stamps
    mon = ca.camonitor(tc + "Temperature_RBV",
                       callback=lambda value=None, timestamp=None, **kw: history.append((timestamp, value)))
    progress = []
    RE.waiting_hook = ProgressBarManager(lambda statuses: _Recorder(statuses, progress))
    try:
        RE(bps.mv(cell, target))
    finally:
        RE.waiting_hook = None
    status = cell.last_status
    assert status.done and status.success and status.settled
    done_at = status.finished_at                 # the controller's clock, not this process's
    wait_for(lambda: history and history[-1][0] > done_at + 0.2, 5, what="monitor past the end")
    mon.clear_callbacks()
    t = np.array([h[0] for h in history])
    v = np.array([h[1] for h in history])
    inside = np.abs(v - target) <= cell.tolerance_c
    before = t <= done_at
    t_out = t[before & ~inside]
    t_in = t[before & inside]
    last_out = t_out.max()
    # the cell overshot: it entered the band, left it again, and the clock restarted
    assert t_in.min() < last_out
    assert v[before].max() > target + cell.tolerance_c
    # done exactly one settle time after the streak began, and the streak began with the first
    # reading after the last excursion (readings every 50 ms; time stamps are the IOC's, so
    # this holds however late a loaded client processes them)
    assert done_at == pytest.approx(status.in_band_since + SETTLE_S, abs=1e-6)
    assert last_out < status.in_band_since <= last_out + 0.2
    # ... and every reading of the last settle time was inside the band
    assert inside[(t > done_at - SETTLE_S) & before].all()
    # the device saw the same readings (its own history) and ended at the target
    assert len(status.history) >= 0.8 * before[t >= status.started_at].sum()
    assert abs(ca.caget(tc + "Temperature_RBV") - target) <= cell.tolerance_c
    # the progress bar was fed: heating, then settling, then done, in C
    phases = [p["name"].split(" ", 1)[1] for p in progress if "name" in p and " " in p["name"]]
    assert phases[0] == "heating" and phases[-1] == "done"
    assert any(p.startswith("settling") for p in phases)
    assert all(p.get("unit") == "C" for p in progress if "current" in p)


class _Recorder:
    """A progress bar that records what the statuses report."""

    def __init__(self, statuses, out):
        for st in statuses:
            st.watch(lambda **kw: out.append(kw))

    def clear(self):
        pass


def test_stop_timeout_and_equilibration(sim, ca, devices):
    from trxrd.acquisition.devices.heating_cell import SettleAbandoned, SettleTimeoutError

    cell = devices[0]
    tc = sim.prefix + "TC:"
    here = ca.caget(tc + "Setpoint")
    # what the RunEngine does at a pause or at the end of a plan: abandon, heater untouched
    status = cell.set(here + 3.0, settle_time_s=30.0)
    cell.stop(success=True)
    assert status.done and status.success and not status.settled
    assert ca.caget(tc + "Setpoint") == here + 3.0
    assert ca.caget(tc + "Enable", as_string=True) == "On"
    status = cell.set(here, settle_time_s=30.0)
    cell.stop()                                    # by hand: the status fails, heater still on
    with pytest.raises(SettleAbandoned):
        status.wait(1)
    assert ca.caget(tc + "Enable", as_string=True) == "On"
    # not settled in time: a clear error, after timeout_s (the cell goes on heating)
    status = cell.set(here + 10.0, settle_time_s=0.1, timeout_s=0.3)
    with pytest.raises(SettleTimeoutError, match=r"not settled at .* within 0.3 s"):
        status.wait(30)
    assert status.finished_at - status.started_at >= 0.3 and not status.settled
    # settled, then equilibrated for equilibrate_s more
    status = cell.set(here + 10.0, settle_time_s=0.1, equilibrate_s=0.4)
    status.wait(30)
    assert status.settled and status.finished_at - status.settled_at == pytest.approx(0.4, abs=1e-6)
    assert status.settled_at - status.in_band_since == pytest.approx(0.1, abs=1e-6)


def test_bad_input_raises_before_anything_moves(sim, ca, devices, RE, monkeypatch):
    from trxrd.acquisition.plans.injection import injection_series
    from trxrd.acquisition.plans.temperature import anneal_profile, temperature_series

    cell, syringe, waxs, saxs = devices
    tc, syr = sim.prefix + "TC:", sim.prefix + "SYR:"
    before = {pv: ca.caget(pv) for pv in (tc + "Setpoint", tc + "RampRate", syr + "Delivered_RBV",
                                          syr + "Rate", syr + "Volume")}
    for bad in (float("nan"), 351.0, -5.0, "hot"):
        with pytest.raises(ValueError):
            cell.set(bad)
        with pytest.raises(ValueError):
            RE(bps.mv(cell, bad))
    with pytest.raises(ValueError, match="settle_time_s"):
        cell.set(30.0, settle_time_s=-1)
    for bad in (-5.0, float("nan"), 601.0):
        with pytest.raises(ValueError):
            cell.ramp_rate.set(bad)
        with pytest.raises(ValueError):
            RE(bps.mv(cell.ramp_rate, bad))
    # plans refuse at call time, before a single message
    bad_plans = [
        lambda: temperature_series([waxs], [30.0, float("nan")], cell=cell, md=MD),
        lambda: temperature_series([waxs], [30.0, 400.0], cell=cell, md=MD),
        lambda: temperature_series([waxs], [30.0], cell=cell, frames=0, md=MD),
        lambda: temperature_series([waxs], [30.0], cell=cell, md={}),             # no sample
        lambda: anneal_profile([("ramp", 40, -10.0)], cell=cell, md=MD),
        lambda: anneal_profile([("ramp", 40, 10.0), ("hold", 45, 60)], cell=cell, md=MD),
        lambda: anneal_profile([("hold", 40, 60)], cell=cell, md=MD),
        lambda: anneal_profile([("ramp", 40, 10.0), ("cool", 60, 5.0)], cell=cell, md=MD),
        lambda: anneal_profile([("ramp", 40, 10.0)], cell=cell, period_s=0, md=MD),
        lambda: anneal_profile([("bake", 40, 10.0)], cell=cell, md=MD),
        lambda: injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=float("nan"), inject_ml=1,
                                 rate_ml_min=60, duration_s=10, md=MD),
        lambda: injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=200, inject_ml=20,
                                 rate_ml_min=60, duration_s=30, md=MD),               # > syringe
        lambda: injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=200, inject_ml=1,
                                 rate_ml_min=0, duration_s=30, md=MD),
        lambda: injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=200, inject_ml=1,
                                 rate_ml_min=6, duration_s=5, md=MD),                 # 10 s > 5 s
        lambda: injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=200, inject_ml=1,
                                 rate_ml_min=60, duration_s=5, frame_period_s=0.1, exposure_s=0.2, md=MD),
    ]
    for i, make in enumerate(bad_plans):
        with pytest.raises(ValueError):
            make()
            pytest.fail(f"bad plan {i} was accepted")
    for bad in ((-1.0, 10.0), (1.0, float("nan")), (11.0, 10.0), (1.0, 200.0)):
        with pytest.raises(ValueError):
            syringe.infuse(*bad)
    after = {pv: ca.caget(pv) for pv in before}
    assert after == before


# -- plans ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_temperature_series_settles_then_records_frames(sim, devices, RE, docs):
    from trxrd.acquisition.plans.temperature import temperature_series

    cell, _, waxs, _ = devices
    base = round(cell.position)
    temps = [base + 5.0, base + 10.0]
    RE(temperature_series([waxs], temps, cell=cell, frames=2, settle_time_s=1.0, md=MD))
    events = _events(docs)
    assert len(events) == 4
    assert [e["data"]["temperature_index"] for e in events] == [0, 0, 1, 1]
    assert [e["data"]["frame"] for e in events] == [0, 1, 0, 1]
    for e in events:
        t_set = temps[e["data"]["temperature_index"]]
        assert e["data"]["cell_setpoint"] == t_set
        assert abs(e["data"]["cell_temperature"] - t_set) <= cell.tolerance_c
        assert e["data"]["pilatus_image"]                      # a datum: the frame is in a file
    assert sum(n == "datum" for n, _ in docs) == 4
    desc = _descriptor(docs)
    assert desc["data_keys"]["cell_temperature"]["units"] == "C"
    assert desc["data_keys"]["cell_output"]["units"] == "%"
    start = next(d for n, d in docs if n == "start")
    assert start["plan_name"] == "temperature_series"
    assert start["plan_args"]["temperatures_c"] == temps
    assert start["settle_rule"]["settle_time_s"] == 1.0
    assert start["sample"]["name"] == SAMPLE["name"]
    # frames at a temperature only once it had settled there
    first_at_second = events[2]["time"]
    assert first_at_second - events[1]["time"] >= 1.0


@pytest.mark.slow
def test_anneal_profile_logs_every_segment(sim, devices, RE, docs):
    from trxrd.acquisition.plans.temperature import Hold, anneal_profile

    cell = devices[0]
    speedup = sim.cfg["heating_cell"]["speedup"]
    base = round(cell.working_setpoint.get())
    top, rate, hold_s, period = base + 4.0, 12.0, 1.0, 0.1
    steps = [("ramp", top, rate), Hold(top, hold_s), ("cool", top - 2.0, rate)]
    try:
        RE(anneal_profile(steps, cell=cell, period_s=period, md=MD))
    finally:
        cell.ramp_rate.set(0.0).wait(5)            # steps again for the next tests
    events = _events(docs)
    seg = np.array([e["data"]["anneal_segment"] for e in events])
    planned = np.array([e["data"]["anneal_time_s"] for e in events])
    taken = np.array([e["data"]["anneal_clock_elapsed"] for e in events])
    wsp = np.array([e["data"]["cell_working_setpoint"] for e in events])
    t_wsp = np.array([e["timestamps"]["cell_working_setpoint"] for e in events])     # the controller's clock
    kinds = [e["data"]["anneal_segment_kind"] for e in events]
    assert set(seg) == {0, 1, 2} and (np.diff(seg) >= 0).all()
    assert {kinds[i] for i in np.flatnonzero(seg == 1)} == {"hold"}
    # one event per period all the way: each taken at or after its planned time, planned one
    # period after the previous one, or later when a slow event overran (never a catch-up burst)
    steps_planned = np.diff(planned)
    assert (taken >= planned - 1e-9).all()
    assert (steps_planned >= period - 1e-9).all()
    assert np.median(steps_planned) == pytest.approx(period, abs=1e-9)
    late = steps_planned > period + 1e-9
    assert (planned[1:][late] <= taken[1:][late] + 1e-9).all()
    # the ramp: the working set point climbs at rate (C/min of controller time = its clock * speedup)
    ramp = (seg == 0) & (wsp > base + 0.5) & (wsp < top - 0.5)
    slope_c_min = np.polyfit(t_wsp[ramp], wsp[ramp], 1)[0] * 60.0 / speedup
    assert slope_c_min == pytest.approx(rate, rel=0.15)
    assert np.all(wsp[seg == 1] == top)
    # the hold lasts hold_s from its first event, never less, and at most one period more than
    # what overrunning events added
    first, end = np.flatnonzero(seg == 1)[0], np.flatnonzero(seg == 2)[0]
    held = planned[end] - planned[first]
    overrun = np.clip(steps_planned[first:end] - period, 0, None).sum()
    assert hold_s <= held <= hold_s + period + overrun + 1e-9
    # the cool-down reached its target, the readings were logged throughout
    assert wsp[-1] == top - 2.0 and np.all(np.diff(wsp[seg == 2]) <= 1e-9)
    temps = np.array([e["data"]["cell_temperature"] for e in events])
    assert temps[seg == 1].mean() == pytest.approx(top, abs=0.6)
    assert {e["data"]["cell_ramp_rate"] for e in events if e["data"]["anneal_segment"] != 1} == {rate}
    start = next(d for n, d in docs if n == "start")
    assert [s["kind"] for s in start["segments"]] == ["ramp", "hold", "cool"]


@pytest.mark.slow
def test_injection_series_frames_before_and_after_injection(sim, ca, devices, RE, docs):
    from trxrd.acquisition.plans.injection import injection_series

    cell, syringe, _, saxs = devices
    if ca.caget(sim.prefix + "SYR:Delivered_RBV") != 0:      # another test injected already
        _restart_beamline(sim)
    mantle, period, pre, duration = 200.0, 0.1, 1.0, 3.0
    RE(injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=mantle, inject_ml=1.0,
                        rate_ml_min=60.0, frame_period_s=period, duration_s=duration, pre_injection_s=pre,
                        exposure_s=0.05, settle_time_s=0.3, md=MD))
    start = next(d for n, d in docs if n == "start")
    t0 = start["reaction_time_zero"]
    events = _events(docs)
    rt = np.array([e["data"]["reaction_time_s"] for e in events])
    exposure = 0.05
    assert (np.diff(rt) > 0).all()
    # frames on both sides of the injection (a frame costs ~0.05 s of CPU; a loaded host still
    # makes 10 in 3 s), the last one at the end of the recording
    post = np.diff(rt[rt > 0])
    assert (rt < 0).sum() >= 2 and (rt > 0).sum() >= 10
    assert rt[0] >= -pre and duration - max(post.max(), period) - exposure <= rt[-1] <= duration + period
    # no frame exposes across time zero
    assert (rt[rt < 0] + exposure / 2 <= 1e-9).all()
    # reaction time is relative to t0: event time - t0 - reaction time is the rest of the frame
    # (half the exposure, read-out, file): after the exposure, never before
    lag = np.array([e["time"] for e in events]) - t0 - rt
    assert (lag > exposure / 2).all()
    # frames on the period grid: never systematically faster than asked
    achieved = float(np.median(post))
    print(f"\ninjection_series: requested {period} s, achieved median frame period {achieved:.3f} s "
          f"(min {post.min():.3f}, max {post.max():.3f})")
    assert achieved >= period - 0.02
    # the injection itself, stamped in its own stream: commanded at time zero, not before; the
    # pump's own time stamps for the first drop and the end (1 mL at 60 mL/min = 1 s)
    (inj,) = _events(docs, "injection")
    d = inj["data"]
    assert d["injection_time_zero"] == t0
    assert 0 <= d["injection_command_time"] - t0 < 1.0
    assert 0 <= d["injection_pump_start_time"] - d["injection_command_time"] < 1.0
    assert d["injection_end_time"] - d["injection_pump_start_time"] == pytest.approx(1.0, abs=0.25)
    first_after = rt[rt > 0][0] - exposure / 2
    assert first_after >= d["injection_command_time"] - t0 - 1e-3
    assert d["injection_delivered_ml"] == pytest.approx(1.0, abs=1e-6)
    assert _descriptor(docs, "injection")["data_keys"]["injection_delivered_ml"]["units"] == "mL"
    assert _descriptor(docs)["data_keys"]["reaction_time_s"]["units"] == "s"
    for e in events:
        assert abs(e["data"]["cell_temperature"] - mantle) < 1.0
    # the frames, read through the resource and datum documents
    (resource,) = [d for n, d in docs if n == "resource"]
    points = {d["datum_id"]: d["datum_kwargs"]["point_number"] for n, d in docs if n == "datum"}
    path = os.path.join(resource["root"], resource["resource_path"])
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        frames = f["/entry/data/data"][[points[e["data"]["saxs_image"]] for e in events]]
    valid = frames[0] >= 0                                   # module gaps and beam stop are < 0
    mean = frames[:, valid].mean(axis=1)
    before, after = mean[rt < 0], mean[rt > 0]
    assert after[-5:].mean() > before.mean() + 10 * max(before.std(), 1e-3)
    assert after[-5:].mean() > 1.5 * after[:3].mean()        # still growing after injection
    assert np.corrcoef(rt[rt > 0], after)[0, 1] > 0.8
    assert not any(math.isnan(x) for x in rt)


def test_syringe_infuse_and_stop(sim, ca, devices, RE):
    from trxrd.acquisition.devices.syringe_pump import InfusionStopped

    syringe = devices[1]
    syr = sim.prefix + "SYR:"
    d0 = ca.caget(syr + "Delivered_RBV")
    # in a plan: done when delivered; the RunEngine's stop(success=True) at the end is harmless
    RE(bps.abs_set(syringe, 0.05, rate_ml_min=30.0, wait=True))
    st = syringe.last_status
    assert st.success and st.delivered_ml == pytest.approx(0.05, abs=1e-9)
    assert ca.caget(syr + "Delivered_RBV") == pytest.approx(d0 + 0.05, abs=1e-9)
    assert st.finished_at - st.started_at == pytest.approx(0.05 / 30.0 * 60.0, abs=0.05)
    # a long infusion goes on through stop(success=True); stop() by hand cuts it short
    d1 = d0 + 0.05
    status = syringe.infuse(0.5, rate_ml_min=3.0)                   # 10 s nominal
    wait_for(lambda: ca.caget(syr + "Delivered_RBV") > d1 + 0.01, 5, what="infusing")
    syringe.stop(success=True)
    wait_for(lambda: ca.caget(syr + "Delivered_RBV") > d1 + 0.03, 5, what="still infusing")
    assert ca.caget(syr + "Infusing_RBV") == 1 and not status.done
    syringe.stop()
    with pytest.raises(InfusionStopped, match="stopped after"):
        status.wait(5)
    assert ca.caget(syr + "Infusing_RBV") == 0
    assert 0.03 < status.delivered_ml < 0.1
    assert status.delivered_ml == pytest.approx(ca.caget(syr + "Delivered_RBV") - d1, abs=1e-3)
