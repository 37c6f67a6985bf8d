"""Bad input, generated (hypothesis): every public plan of the session and every device axis a
user moves refuses NaN/inf, huge numbers, negative or fractional counts, wrong types, numbers
with units in strings, empty lists and out-of-limit values with a ``ValueError``/``TypeError``
that names the argument, before the first message that moves or exposes anything: the plan
raises when called (or at its first message); the device's ``set`` raises (or its status
fails) before it writes. No internal error (``AttributeError``, ``KeyError``, ...) counts as a
refusal. The IOCs' motor positions, set points and the detectors' ``ArrayCounter`` are read
with a separate CA client before and after each test and must not change.

Also here: set points the IOC refuses or clips fail with the reason, and the detector's
exposure is in ``stage_sigs`` (an outside change between runs does not stick).

One session and one simulator for the module; examples are derandomized (same cases in CI).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SAMPLE, wait_for

EXAMPLES = 50                      # per test; the module runs 11 generated tests (the device one 4x)
GENERATED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.filter_too_much])

# what must not change while bad input is refused: positions, set points, frames taken
WATCHED = ("DLY:m1.RBV", "DLY:m1.VAL", "WP:m1.RBV", "WP:m1.VAL", "SMP:x.RBV", "SMP:y.RBV", "DG:Delay",
           "JET:FlowRate", "JET:Run", "LSR:Shutter", "TC:Setpoint", "TC:Enable", "SYR:Rate", "SYR:Volume",
           "SYR:Infusing_RBV", "PIL:cam1:ArrayCounter_RBV", "SAXS:cam1:ArrayCounter_RBV",
           "PIL:cam1:AcquireTime_RBV", "PIL:cam1:Acquire")
# errors that are bugs, not refusals
INTERNAL = (AttributeError, KeyError, IndexError, ZeroDivisionError, NameError, UnboundLocalError,
            AssertionError, OverflowError, RecursionError, StopIteration, RuntimeError, LookupError)


@pytest.fixture(scope="module")
def session(sim, tmp_path_factory):
    from trxrd.session import SessionConfig, open_session

    laser = sim.cfg["laser"]
    s = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path_factory.mktemp("bad_input"),
                                   catalog_process=False,
                                   spot_fwhm_um=(laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"])),
                     verbose=False)
    s.set_sample(**SAMPLE)
    s.beamline.att.set_calibration(2e-4, 0.04, 30.0)        # any calibration: nothing moves
    yield s
    s.close()


@pytest.fixture
def untouched(sim, ca, session):
    """The watched PVs read the same after the test as before it."""
    def snapshot():
        return {pv: ca.caget(sim.prefix + pv, as_string=pv.endswith(("Run", "Shutter", "Enable", "Acquire")))
                for pv in WATCHED}

    before = snapshot()
    yield
    after = snapshot()
    changed = {pv: (before[pv], after[pv]) for pv in WATCHED if before[pv] != after[pv]}
    assert not changed, f"bad input moved or exposed something: {changed}"


CASES = {"run": 0}


def refused(call, names, label):
    """*call()* (a plan call, or a device request) must raise ValueError/TypeError naming one of
    *names* before the first message; a plan's generator is advanced to its first message."""
    CASES["run"] += 1
    try:
        result = call()
        if hasattr(result, "__next__"):                 # a plan: its first message
            msg = next(result)
            result.close()
            pytest.fail(f"{label}: accepted, the plan yielded {msg}")
        if hasattr(result, "wait"):                     # a device's status: it must fail
            try:
                result.wait(10)
            except (ValueError, TypeError) as exc:
                return _named(exc, names, label)
            pytest.fail(f"{label}: accepted, the status succeeded")
    except INTERNAL as exc:
        pytest.fail(f"{label}: internal error instead of a clear refusal: {type(exc).__name__}: {exc}")
    except (ValueError, TypeError) as exc:
        return _named(exc, names, label)
    pytest.fail(f"{label}: accepted ({result!r})")


def _named(exc, names, label):
    text = str(exc)
    assert any(n in text for n in names), f"{label}: unclear error (names none of {names}): {exc!r}"
    assert "\n" not in text.strip() or len(text) < 2000, f"{label}: a traceback-like message: {text[:300]}"


# -- bad values ------------------------------------------------------------------------------------
HUGE = st.one_of(st.floats(min_value=1e12, max_value=1e308), st.floats(min_value=-1e308, max_value=-1e12),
                 st.integers(min_value=10 ** 12, max_value=10 ** 40), st.integers(min_value=-10 ** 40,
                                                                                  max_value=-10 ** 12))
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")])
WITH_UNITS = st.sampled_from(["1 ps", "100ps", "5 mJ/cm^2", "0.1 s", "10 fs", "240 C", "1 mL", "abc", "", "1e3 ns"])
WRONG_TYPE = st.sampled_from([[], [1.0], {}, {"value": 1.0}, object(), True, False, complex(1, 1), (1.0, 2.0),
                              b"1.0", np.array([1.0, 2.0])])


def bad_number(optional=False, extra=()):
    """A value no numeric argument accepts (None too unless *optional*), plus *extra*."""
    options = [NON_FINITE, HUGE, WITH_UNITS, WRONG_TYPE]
    if not optional:
        options.append(st.none())
    if extra:
        options.append(st.sampled_from(list(extra)))
    return st.one_of(*options)


POSITIVE = (0, 0.0, -1.0, -1e-9, -5)           # for arguments that must be > 0
NON_NEGATIVE = (-1.0, -1e-9, -5)


def bad_count(optional=False):
    options = [st.integers(max_value=0), st.integers(min_value=10 ** 7, max_value=10 ** 30),
               st.floats(min_value=0.01, max_value=1e3).filter(lambda v: v != int(v)), NON_FINITE,
               st.sampled_from(["3", "3 frames", True, [], [2], 2.5j])]
    if not optional:
        options.append(st.none())
    return st.one_of(*options)


def bad_list(optional=False):
    """Lists of numbers a plan cannot use."""
    options = [st.sampled_from([[], (), "0, 100", "0:100", 5.0, 100, {"a": 1}, [[0.0, 1.0]], [None], ["1 ps"],
                                [object()], np.array([])]),
               st.lists(NON_FINITE, min_size=1, max_size=3),
               st.lists(st.floats(min_value=1e12, max_value=1e300), min_size=1, max_size=3)]
    if not optional:
        options.append(st.none())
    return st.one_of(*options)


BAD_MD = st.sampled_from([{"x": object()}, {"x": math.nan}, {"x": math.inf}, {1: "a"}, {"x": {2: "b"}},
                          {"x": {"y": object()}}, {"x": np.arange(3)}, {"x": [1, object()]}, "md", ["a", 1], 5,
                          {"uid": "mine"}, {"time": 0}, {"sample": "water"}, {"sample": {"name": ""}},
                          {"sample": {**SAMPLE, "size_nm": -1}}, {"sample": {**SAMPLE, "sigma_cm2": 1.0}},
                          {"x": {1, 2}}, {"x": b"bytes"}])
BAD_DETECTORS = st.sampled_from([[], None, "pilatus", [None], [3], [object()], ["pilatus"], 7, {}])
BAD_BOOL = st.sampled_from(["yes", "no", "False", 2, -1, 0.5, None, [], [True], math.nan])
BAD_CHOICE = st.one_of(st.sampled_from(["bogus", "", " ", "INTERLEAVED ", 3, None, ["interleaved"], math.nan]),
                       st.text(min_size=1, max_size=6).filter(lambda s: s not in ("interleaved", "after",
                                                                                   "before", "none", "negative_delay")))
BAD_SEED = st.sampled_from([-1, 2.5, "x", math.nan, [1, 2], {}, -10 ** 30, True])
BAD_PAIR = st.one_of(st.sampled_from([(1.0,), (1.0, 2.0, 3.0), "0:10", None, 5.0, [], ("a", 1.0), (math.nan, 1.0),
                                      (0.0, math.inf), (0.0, 1e300), {"lo": 0}, (None, 1.0)]),
                     st.tuples(st.just(0.0), HUGE))


def plan_cases(args: dict):
    """(argument name, bad value) pairs over *args* (name -> strategy of bad values)."""
    return st.one_of(*[st.tuples(st.just(name), strategy) for name, strategy in args.items()])


def check_plan(session, name, base_args, base_kwargs, case, aliases=None):
    arg, value = case
    args, kwargs = list(base_args), dict(base_kwargs)
    if isinstance(arg, int):
        args[arg] = value
        label_arg = POSITIONAL[name][arg]
    else:
        kwargs[arg] = value
        label_arg = arg
    names = (label_arg, *((aliases or {}).get(label_arg, ())))
    refused(lambda: session.plans[name](*args, **kwargs), names, f"{name}({label_arg}={value!r:.60})")


POSITIONAL = {"delay_scan": ("detectors", "delays_ps"), "fluence_scan": ("detectors", "fluences"),
              "fluence_delay_grid": ("detectors", "fluences", "delays_ps"), "calibrate_fluence": ("att", "angles_deg"),
              "temperature_series": ("detectors", "temperatures_c"), "anneal_profile": ("steps",),
              "injection_series": ("saxs_detector",), "raster_scan": ("detectors", "x_range", "y_range", "step_um"),
              "find_time_zero": ("detectors",)}
ALIASES = {"detectors": ("detector",), "md": ("md", "sample"), "delays_ps": ("delay",), "fluences": ("fluence",),
           "temperatures_c": ("temperature", "set point"), "angles_deg": ("angle", "waveplate"),
           "reference_delay_ps": ("reference_delay", "delay"), "delay_ps": ("delay",),
           "mantle_temp_c": ("mantle_temp_c", "set point"), "inject_ml": ("inject_ml", "volume"),
           "rate_ml_min": ("rate_ml_min",), "q_windows": ("q_window", "q window"), "step_um": ("step_um", "step"),
           "x_range": ("x_range",), "y_range": ("y_range",), "steps": ("steps",), "saxs_detector": ("saxs_detector",)}

PUMP_PROBE_OPTIONS = {
    "reference": BAD_CHOICE, "reference_delay_ps": bad_number(extra=(0.0, 10.0, 1e6)),
    "frames_per_point": bad_count(), "repeats": bad_count(), "shuffle": BAD_BOOL, "seed": BAD_SEED,
    "frames_per_trigger": bad_count(optional=True), "md": BAD_MD, "detectors": BAD_DETECTORS}


def det(session):
    return [session.beamline.pilatus]


@GENERATED
@given(case=plan_cases({**PUMP_PROBE_OPTIONS, 1: bad_list()}))
def test_delay_scan(session, untouched, case):
    check_plan(session, "delay_scan", (det(session), [0.0, 100.0]), {}, _positional(case, "delay_scan"), ALIASES)


@GENERATED
@given(case=plan_cases({**PUMP_PROBE_OPTIONS, 1: bad_list(), "delay_ps": bad_number()}))
def test_fluence_scan(session, untouched, case):
    check_plan(session, "fluence_scan", (det(session), [0.1, 0.2]), {"delay_ps": 40.0},
               _positional(case, "fluence_scan"), ALIASES)


@GENERATED
@given(case=plan_cases({**PUMP_PROBE_OPTIONS, 1: bad_list(), 2: bad_list()}))
def test_fluence_delay_grid(session, untouched, case):
    check_plan(session, "fluence_delay_grid", (det(session), [0.1, 0.2], [0.0, 100.0]), {},
               _positional(case, "fluence_delay_grid"), ALIASES)


@GENERATED
@given(case=plan_cases({"angles_deg": bad_list(optional=True), "settle_s": bad_number(extra=NON_NEGATIVE),
                        "readings": bad_count(), "md": BAD_MD}))
def test_calibrate_fluence(session, untouched, case):
    check_plan(session, "calibrate_fluence", (), {}, case, ALIASES)


@GENERATED
@given(case=plan_cases({1: bad_list(), "settle_time_s": bad_number(optional=True, extra=NON_NEGATIVE),
                        "tolerance_c": bad_number(optional=True, extra=POSITIVE),
                        "equilibrate_s": bad_number(optional=True, extra=NON_NEGATIVE),
                        "timeout_s": bad_number(optional=True, extra=POSITIVE), "frames": bad_count(),
                        "md": BAD_MD, "detectors": BAD_DETECTORS}))
def test_temperature_series(session, untouched, case):
    check_plan(session, "temperature_series", (det(session), [30.0, 40.0]), {},
               _positional(case, "temperature_series"), ALIASES)


BAD_STEPS = st.one_of(
    st.sampled_from([[], None, "ramp", 5, [("bogus", 80, 600.0)], [("ramp", 80)], [("ramp", 80, 600.0, 1)],
                     [1, 2, 3], [None], [("hold", 80, -5.0)], [("ramp", 80, 0.0)], [("cool", 30, -600.0)],
                     [("ramp", "80 C", 600.0)], [("hold", 80, "20 s")]]),
    st.tuples(st.sampled_from(["ramp", "hold", "cool"]), bad_number(), st.just(600.0)).map(lambda t: [t]),
    st.tuples(st.sampled_from(["ramp", "hold", "cool"]), st.just(80.0), bad_number(extra=(0.0, -1.0))).map(
        lambda t: [t]))


@GENERATED
@given(case=plan_cases({0: BAD_STEPS, "period_s": bad_number(extra=POSITIVE), "md": BAD_MD,
                        "detectors": st.sampled_from([None, "pilatus", [None], [3], [object()], 7])}))
def test_anneal_profile(session, untouched, case):
    steps = [("ramp", 80, 600.0), ("hold", 80, 20.0), ("cool", 30, 600.0)]
    check_plan(session, "anneal_profile", (steps,), {"period_s": 2.0}, _positional(case, "anneal_profile"),
               {**ALIASES, "steps": ("steps",), "period_s": ("period_s",), "detectors": ("detector",)})


@GENERATED
@given(case=plan_cases({0: st.sampled_from([None, "saxs", object(), 3, []]),
                        "mantle_temp_c": bad_number(), "inject_ml": bad_number(extra=POSITIVE),
                        "rate_ml_min": bad_number(extra=POSITIVE), "frame_period_s": bad_number(extra=POSITIVE),
                        "duration_s": bad_number(extra=POSITIVE), "pre_injection_s": bad_number(extra=NON_NEGATIVE),
                        "exposure_s": bad_number(optional=True, extra=POSITIVE + (5.0,)),
                        "settle_time_s": bad_number(optional=True, extra=NON_NEGATIVE), "md": BAD_MD}))
def test_injection_series(session, untouched, case):
    kwargs = dict(mantle_temp_c=240.0, inject_ml=1.0, rate_ml_min=60.0, duration_s=5.0, pre_injection_s=1.0)
    check_plan(session, "injection_series", (session.beamline.saxs,), kwargs, _positional(case, "injection_series"),
               {**ALIASES, "exposure_s": ("exposure_s",), "frame_period_s": ("frame_period_s",)})


@GENERATED
@given(case=plan_cases({0: BAD_DETECTORS, 1: BAD_PAIR, 2: BAD_PAIR, 3: bad_number(extra=POSITIVE),
                        "snake": BAD_BOOL, "md": BAD_MD}))
def test_raster_scan(session, untouched, case):
    check_plan(session, "raster_scan", (det(session), (-10.0, 10.0), (0.0, 10.0), 10.0), {},
               _positional(case, "raster_scan"), ALIASES)


BAD_WINDOWS = st.sampled_from([[], None, "1.7:2.05", [(2.05, 1.7)], [(math.nan, 2.0)], [(1.7,)], [("a", "b")],
                               [(1.7, math.inf)], 1.7, [(-1.0, 2.0)], [[1.7, 2.05, 3.0]], [None]])


@GENERATED
@given(case=plan_cases({"q_windows": BAD_WINDOWS, "window_ps": bad_number(extra=POSITIVE),
                        "step_ps": bad_number(extra=POSITIVE + (100.0,)), "frames_per_point": bad_count(),
                        "center_ps": bad_number(), "min_significance": bad_number(extra=POSITIVE),
                        "frames_per_trigger": bad_count(optional=True), "md": BAD_MD,
                        "analyse": st.sampled_from([None, 3, "fit", [print]]), "detectors": BAD_DETECTORS}))
def test_find_time_zero(session, untouched, case):
    kwargs = dict(q_windows=[(1.7, 2.05)], window_ps=60.0, step_ps=10.0,
                  analyse=lambda windows, significance: {"problem": "never called"})
    check_plan(session, "find_time_zero", (det(session),), kwargs, case,
               {**ALIASES, "window_ps": ("window_ps",), "step_ps": ("step_ps",), "center_ps": ("center_ps",),
                "min_significance": ("min_significance",), "analyse": ("analyse",)})


UNIVERSAL = st.one_of(NON_FINITE, HUGE, WITH_UNITS, WRONG_TYPE, st.none())


@GENERATED
@given(case=st.one_of(
    st.tuples(st.sampled_from(["linear_delays", "log_delays"]), st.sampled_from([0, 1]), UNIVERSAL),
    st.tuples(st.sampled_from(["linear_delays", "log_delays"]), st.just(2),
              st.one_of(UNIVERSAL, st.sampled_from([1, 0, -3, 2.5]))),
    st.tuples(st.just("dense_then_log"), st.sampled_from([0, 1, 3]), UNIVERSAL),
    st.tuples(st.just("dense_then_log"), st.sampled_from([2, 4]), st.one_of(UNIVERSAL, st.sampled_from([0, -3, 2.5])))))
def test_delay_lists(session, untouched, case):
    """The delay-list helpers of the session (``log_delays`` ...) refuse bad arguments too."""
    name, index, value = case
    args = [-10.0, 10.0, 5, 1000.0, 10] if name == "dense_then_log" else [-100.0, 1000.0, 20]
    args[index] = value
    what = ("start", "stop", "num", "stop", "num_log")[index]
    refused(lambda: session.plans[name](*args), (name, what), f"{name}(args[{index}]={value!r:.60})")


def _positional(case, plan):
    """Positional cases keep their index; keyword ones their name."""
    return case


# -- device requests ---------------------------------------------------------------------------------
def out_of(low, high):
    """Finite values strictly outside [low, high]."""
    span = max(abs(high - low), 1.0)
    return st.one_of(st.floats(min_value=high + 1e-6 * span, max_value=high + 1e6 * span),
                     st.floats(min_value=low - 1e6 * span, max_value=low - 1e-6 * span))


BAD_REQUEST = st.one_of(NON_FINITE, HUGE, WITH_UNITS, WRONG_TYPE, st.none())


def axes(session):
    """(label, request(value), names in the message, (low, high) the axis allows)."""
    bl = session.beamline
    lo_ps, hi_ps = bl.delay.reach_ps()
    att = bl.att
    f_min, f_max = float(att.fluence_for_power(att.p_min_w.get())), att.max_fluence()
    jet_lo, jet_hi = bl.jet.flow_setpoint.limits
    cell_lo, cell_hi = bl.cell.limits
    exp_lo, exp_hi = bl.pilatus.cam.acquire_time.limits
    return {
        "delay": (lambda v: bl.delay.set(v), ("delay",), (lo_ps, hi_ps)),
        "delay.delay": (lambda v: bl.delay.delay.set(v), ("delay",), (lo_ps, hi_ps)),
        "fluence": (lambda v: att.fluence.set(v), ("fluence",), (f_min, f_max)),
        "excitations": (lambda v: att.excitations.set(v), ("excitations", "fluence"),
                        (f_min * att.n_per_fluence(), f_max * att.n_per_fluence())),
        "jet flow": (lambda v: bl.jet.set(v), ("flow",), (max(jet_lo, 1e-9), jet_hi)),
        "cell temperature": (lambda v: bl.cell.set(v), ("set point", "cell"), (cell_lo, cell_hi)),
        "syringe volume": (lambda v: bl.syringe.set(v, rate_ml_min=10.0), ("volume",),
                           (1e-9, bl.syringe.volume.allowed()[1])),
        "syringe rate": (lambda v: bl.syringe.set(0.1, rate_ml_min=v), ("rate",), (1e-9, bl.syringe.rate.allowed()[1])),
        "stage x": (lambda v: bl.stage.x.set(v), ("sample_x",), bl.stage.x.limits),
        "waveplate": (lambda v: att.waveplate.set(v), ("waveplate",), att.waveplate.limits),
        "generator": (lambda v: bl.delay.generator.set(v), ("generator", "delay"), bl.delay.generator.limits),
        "exposure_s": (lambda v: setattr(bl.pilatus, "exposure_s", v), ("exposure",), (exp_lo, exp_hi)),
        "frames_per_trigger": (lambda v: setattr(bl.pilatus, "frames_per_trigger", v), ("frames_per_trigger",),
                               (1, 1_000_000)),
        "time zero": (lambda v: bl.delay.set_time_zero(v), ("time zero", "time-zero"), bl.delay.optical.limits),
        "ramp rate": (lambda v: bl.cell.ramp_rate.set(v), ("ramp",), bl.cell.ramp_rate.allowed()),
        "shutter": (lambda v: bl.shutter.set(v), ("shutter",), None),
    }


AXES = ("delay", "delay.delay", "fluence", "excitations", "jet flow", "cell temperature", "syringe volume",
        "syringe rate", "stage x", "waveplate", "generator", "exposure_s", "frames_per_trigger", "time zero",
        "ramp rate", "shutter")


@st.composite
def device_case(draw):
    axis = draw(st.sampled_from(AXES))
    return axis, draw(st.one_of(BAD_REQUEST, st.just("OUT")))


@settings(GENERATED, max_examples=4 * EXAMPLES)
@given(case=device_case(), data=st.data())
def test_device_requests(session, untouched, case, data):
    axis, value = case
    request, names, limits = axes(session)[axis]
    if isinstance(value, str) and value == "OUT":
        if limits is None:
            value = "Half open"
        else:
            value = data.draw(out_of(*limits), label="out of limits")
    if axis == "shutter" and isinstance(value, bool):
        value = "Ajar"                     # True/False are the shutter's own states
    if value is None and axis in ("syringe rate", "time zero"):
        value = math.nan                   # None there means "the current rate / position"
    refused(lambda: request(value), names, f"{axis} <- {value!r:.60}")


def test_generated_cases_counted():
    """Runs last in the module (file order): the number of generated cases, for the report."""
    print(f"\n{CASES['run']} generated bad inputs refused")


# -- set points the IOC refuses or clips -------------------------------------------------------------
def test_refused_set_point_fails_the_status(session, sim, ca):
    """With the client's limit check off, a value the IOC refuses fails the status with the
    reason at once (no success, no wait for ever); the old value stays."""
    from trxrd.acquisition.devices._signals import SetpointRefused

    cam = session.beamline.pilatus.cam
    before = ca.caget(sim.prefix + "PIL:cam1:AcquireTime_RBV")
    cam.acquire_time.use_limits = False
    try:
        status = cam.acquire_time.set(5000.0)
        with pytest.raises(SetpointRefused, match="5000.0 s|5000.0.*it reads"):
            status.wait(10)
    finally:
        cam.acquire_time.use_limits = True
    assert ca.caget(sim.prefix + "PIL:cam1:AcquireTime_RBV") == before
    with pytest.raises(ValueError, match="outside of range"):       # the IOC's DRVH, before writing
        cam.acquire_time.set(5000.0)


def test_outside_exposure_change_does_not_stick(session, sim, ca):
    """Another client changes AcquireTime between runs: the next run still exposes what was
    asked (exposure in stage_sigs)."""
    from bluesky.plans import count

    pilatus = session.beamline.pilatus
    pilatus.exposure_s = 0.05
    ca.caput(sim.prefix + "PIL:cam1:AcquireTime", 0.3, wait=True)
    seen = []
    token = pilatus.cam.acquire_time.subscribe(lambda value, **kw: seen.append(value), run=False)
    try:
        counter = ca.caget(sim.prefix + "PIL:cam1:ArrayCounter_RBV")
        session.RE(count([pilatus], 1, md={"sample": SAMPLE}))
        wait_for(lambda: ca.caget(sim.prefix + "PIL:cam1:ArrayCounter_RBV") == counter + 1, 10, what="one frame")
    finally:
        pilatus.cam.acquire_time.unsubscribe(token)
    assert 0.05 in seen, seen                                      # staged to the asked exposure
    assert pilatus.stage_sigs["cam.acquire_time"] == 0.05


# -- set_reduction -----------------------------------------------------------------------------------
def _bad_settings(sim, tmp):
    import fabio

    junk = tmp / "junk.poni"
    junk.write_text("Distance: abc\n")
    small = tmp / "small.edf"
    fabio.edfimage.EdfImage(data=np.zeros((5, 5), np.int8)).write(str(small))
    poni, mask = sim.waxs_dir / "waxs.poni", sim.waxs_dir / "waxs_mask.edf"
    return {
        "poni not a PONI": ({"poni": junk}, "PONI"), "poni is the mask": ({"poni": mask}, "PONI"),
        "mask is the PONI": ({"mask": poni}, "mask"), "mask of another detector": ({"mask": small}, "mask shape"),
        "mask missing": ({"mask": tmp / "nope.edf"}, "mask file not found"),
        "window off the detector": ({"windows": [(100.0, 200.0)]}, "outside what the detector sees"),
        "window twice": ({"windows": [(1.7, 2.05), (1.7, 2.05)]}, "twice"),
        "window not numbers": ({"windows": ["a:b"]}, "q window"), "no window": ({"windows": []}, "q window"),
        "negative window": ({"windows": [(-1.0, 2.0)]}, "q window"),
        "npt 0": ({"npt": 0}, "npt"), "npt huge": ({"npt": 10 ** 9}, "npt"), "npt text": ({"npt": "1000"}, "npt"),
        "model bogus": ({"model": "bogus"}, "model"), "part bogus": ({"part": "bogus"}, "part"),
        "threshold bogus": ({"threshold_model": "bogus"}, "threshold_model"),
        "irf negative": ({"irf_fwhm_ps": -1.0}, "irf_fwhm_ps"), "irf nan": ({"irf_fwhm_ps": math.nan}, "irf_fwhm_ps"),
        "irf huge": ({"irf_fwhm_ps": 1e12}, "irf_fwhm_ps"),
        "image_key unknown": ({"image_key": "nonexistent_image"}, "image_key"),
        "image_key of the SAXS detector": ({"image_key": "saxs_image"}, "image_key"),
        "reflection off the detector": ({"reflections": ["112:100:200"]}, "outside what the detector sees"),
        "reflection not HKL": ({"reflections": ["abc"]}, "reflection"),
        "structure bogus": ({"structure": "hex"}, "structure"), "thermometer bogus": ({"thermometer": {"x": 1}},
                                                                                      "thermometer"),
        "unknown option": ({"foo": 1}, "foo"),
    }


def test_set_reduction_refuses_bad_settings_at_once(session, sim, tmp_path):
    """Every bad setting is refused by set_reduction itself (nothing installed, the good
    settings stay), never later in the reduced run."""
    poni, mask = sim.waxs_dir / "waxs.poni", sim.waxs_dir / "waxs_mask.edf"
    session.reduction.set(poni, mask=mask, windows=[(1.70, 2.05)], save=False)
    good = session.reduction.settings
    try:
        for label, (change, match) in _bad_settings(sim, tmp_path).items():
            CASES["run"] += 1
            with pytest.raises(ValueError, match=match):
                session.reduction.set(**change, save=False)
            assert session.reduction.settings == good, label
    finally:
        session.reduction.off()
