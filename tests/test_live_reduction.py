"""Live reduction against the simulated beamline: a delay scan reduced while it runs (frames
read through resource/datum, I(q) and the fits stored in the catalog, linked to the raw run),
the same numbers from the offline re-reduction of the stored run, and the simulator's truth
recovered."""
import math

import numpy as np
import pytest

pytestmark = pytest.mark.ioc

SAMPLE = {"name": "CuInSe2 live-reduction test", "size_nm": 7.0, "ligand": "oleylamine",
          "solvent": "dodecane", "sigma_cm2": 4e-14}


@pytest.fixture(scope="module")
def scan(sim, bl, tmp_path_factory):
    """One delay scan with live reduction (on its own thread) into an embedded catalog; what the
    tests need of it."""
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from trxrd.acquisition.plans.delays import dense_then_log
    from trxrd.acquisition.plans.pump_probe import delay_scan
    from trxrd.catalog import CatalogWriter, open_catalog
    from trxrd.reduction.callbacks import LiveReduction
    from trxrd.reduction.settings import ReductionSettings
    from trxrd.simulated_devices.physics.beamline import window_for

    root = tmp_path_factory.mktemp("live")
    att = bl.att
    att.sigma_cm2.put(SAMPLE["sigma_cm2"])
    exposure, template = bl.pilatus.exposure_s, bl.pilatus.hdf5.write_path_template
    bl.pilatus.exposure_s = 0.1
    bl.pilatus.hdf5.write_path_template = f"{root}/frames/pilatus/%Y/%m/%d/"   # inside this catalog's root
    cat = open_catalog(root=root)
    writer = CatalogWriter(cat, backup_directory=root / "spool")
    RE = RunEngine({})
    RE.subscribe(writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    window = window_for("112", sim.cfg)
    poni, mask = sim.waxs_dir / "waxs.poni", sim.waxs_dir / "waxs_mask.edf"
    settings = ReductionSettings(poni, mask=mask, windows=[window], model="biexp")
    live = LiveReduction(settings, store=writer)
    RE.subscribe(live)
    delays = dense_then_log(-200, 200, 17, 10000, 16)          # every 25 ps near t0, as the demo
    try:
        RE(bps.mv(att.fluence, 240.0 / att.n_per_fluence()))        # <N> = 240, 4x threshold
        uid, = RE(delay_scan([bl.pilatus], delays, md={"sample": SAMPLE}, **bl.devices))
        live.wait(300)
        writer.flush()
    finally:
        bl.jet.stop()
        bl.pilatus.exposure_s, bl.pilatus.hdf5.write_path_template = exposure, template
    yield dict(cat=cat, writer=writer, uid=uid, docs=docs, delays=delays, integrator=live.integrator,
               live=live.pump_probe, settings=settings, poni=poni, mask=mask, window=window, root=root,
               time_zero_mm=bl.delay.time_zero_mm.get())
    live.close()
    writer.close()


def _derived(cat, uid, plan_name):
    from tiled.queries import Key

    runs = list(cat.search(Key("raw_uid") == uid).search(Key("plan_name") == plan_name).values())
    assert len(runs) == 1, f"expected one {plan_name} run linked to {uid}, found {len(runs)}"
    return runs[0]


def test_live_reduction_is_stored_linked_to_the_raw_run(scan):
    cat, uid, n = scan["cat"], scan["uid"], len(scan["delays"])
    assert cat[-1].start["uid"] == uid                       # the raw run stays the newest
    assert scan["integrator"].frames == 2 * n
    reduced = _derived(cat, uid, "integrate")
    assert reduced.metadata["stop"]["exit_status"] == "success"
    assert reduced.start["raw_plan_name"] == "delay_scan"
    assert reduced.start["poni_file"] == str(scan["poni"].resolve())
    intensity = reduced["primary"]["intensity"].read()
    q = reduced["primary"]["q"].read()[0]
    assert intensity.shape == (2 * n, 1000)
    assert q[0] < 1.88 < q[-1]
    roles = list(reduced["primary"]["role"].read())
    assert roles == ["on", "off"] * n
    pp = _derived(cat, uid, "pump_probe")
    diff = pp["difference"].read()
    assert len(diff["point"]) == n
    np.testing.assert_allclose(diff["point"].values, sorted(scan["delays"]))
    fits = pp["fit"].read()
    assert len(fits["tau1_ps"]) >= 2                           # refit while the scan ran
    assert fits["tau1_ps"].values[-1] == pytest.approx(scan["live"].result.fit.value("tau1_ps"))


def test_live_fit_recovers_the_simulators_truth(scan, sim):
    from conftest import true_delay_ps

    fit = scan["live"].result.fit
    truth = sim.cfg["pump_probe"]
    assert fit.model == "biexp"
    assert fit.value("tau1_ps") == pytest.approx(truth["tau1_ps"], rel=0.10)
    # the device's time zero is not the true one: the fit finds where on its axis the pump arrives
    true_t0_on_axis = -true_delay_ps(sim, 0.0, scan["time_zero_mm"])
    assert abs(true_t0_on_axis) > 20.0
    assert fit.value("t0_ps") == pytest.approx(true_t0_on_axis, abs=10.0)
    assert fit.value("tau2_ps") == pytest.approx(truth["tau2_ps"], rel=0.35)
    # the signal: a loss of (112) intensity after t0 only, recovering towards zero
    r = scan["live"].result
    early = r.x < true_t0_on_axis - 100
    assert early.sum() >= 2
    assert np.all(np.abs(r.signal[early]) < 5 * r.signal_err[early] + 2e-3)
    assert r.signal.min() < -0.1


def test_offline_rereduction_equals_live(scan):
    from trxrd.reduction.callbacks import live_reduction
    from trxrd.reduction.callbacks.replay import replay_run

    sink = []
    integrator, offline = live_reduction(scan["settings"], store=lambda name, doc: sink.append((name, doc)))
    for name, doc in replay_run(scan["cat"][scan["uid"]]):
        integrator(name, doc)
    live, again = scan["live"].result, offline.result
    np.testing.assert_allclose(again.x, live.x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(again.signal, live.signal, rtol=1e-9, atol=0)
    np.testing.assert_allclose(again.diff.d_intensity, live.diff.d_intensity, rtol=1e-9)
    for name in ("tau1_ps", "tau2_ps", "t0_ps", "irf_fwhm_ps"):
        assert again.fit.value(name) == pytest.approx(live.fit.value(name), rel=1e-6)
    stops = [doc for name, doc in sink if name == "stop"]
    assert [s["exit_status"] for s in stops] == ["success", "success"]


def test_live_reduction_in_its_own_process(scan, tmp_path):
    """The RunEngine's documents over 0MQ (JSON) to `trxrd live` in another process: the
    frames are read there through resource/datum, and the result equals the in-process one."""
    import json

    from conftest import remote_reduction

    lo, hi = scan["window"]
    result_file = tmp_path / f"{scan['uid'][:8]}.json"
    remote_reduction(["--poni", str(scan["poni"]), "--mask", str(scan["mask"]), "--window", f"{lo}:{hi}",
                      "--model", "biexp", "--json-dir", str(tmp_path)], scan["docs"], result_file.exists)
    remote = json.loads(result_file.read_text())
    here = scan["live"].result
    np.testing.assert_allclose(remote["signal"], here.signal, rtol=1e-9)
    assert remote["fit"]["tau1_ps"]["value"] == pytest.approx(here.fit.value("tau1_ps"), rel=1e-6)


def test_trxrd_reduce_stores_a_second_linked_reduction(scan, monkeypatch, capsys):
    from trxrd.cli import main

    scan["writer"].close()          # one writer of the embedded catalog at a time
    monkeypatch.setenv("TRXRD_DATA", str(scan["root"]))
    lo, hi = scan["window"]
    rc = main(["reduce", scan["uid"][:8], "--poni", str(scan["poni"]), "--mask", str(scan["mask"]),
               "--window", f"{lo}:{hi}"])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, captured.err
    assert f"{2 * len(scan['delays'])} frames integrated" in out
    from tiled.queries import Key

    cat = scan["cat"]
    reductions = list(cat.search(Key("raw_uid") == scan["uid"]).search(Key("plan_name") == "pump_probe").values())
    assert len(reductions) == 2
    taus = [r["fit"].read()["tau1_ps"].values[-1] for r in reductions]
    assert taus[0] == pytest.approx(taus[1], rel=1e-6) or math.isnan(taus[0])


def test_a_failing_reduction_never_aborts_the_acquisition(tmp_path):
    """A frame the calibration cannot take: the reduced run closes as failed, no exception."""
    from event_model import compose_run

    from trxrd.reduction.callbacks import LiveIntegrator
    from trxrd.simulated_devices.physics.detector import DetectorGeometry

    geo = DetectorGeometry("pilatus300k", 70, 53, 5, 11.7)
    poni, mask = geo.write_calibration(tmp_path, "waxs")
    integrator = LiveIntegrator(poni, mask=mask)
    out = []
    integrator.subscribe(lambda name, doc: out.append((name, doc)))
    run = compose_run(metadata={"plan_name": "delay_scan"})
    desc = run.compose_descriptor(name="primary", data_keys={
        "pilatus_image": {"source": "x", "dtype": "array", "shape": [10, 10]}})
    integrator("start", run.start_doc)
    integrator("descriptor", desc.descriptor_doc)
    integrator("event", desc.compose_event(data={"pilatus_image": np.zeros((10, 10))},
                                           timestamps={"pilatus_image": 0.0}))
    integrator("stop", run.compose_stop())
    names = [name for name, _ in out]
    assert names == ["start", "stop"]
    assert out[-1][1]["exit_status"] == "fail"
    assert "does not match the detector" in out[-1][1]["reason"]


def test_trxrd_reduce_says_when_the_catalog_did_not_store_it(scan, monkeypatch, capsys):
    """The catalog's tables are held by another process while `trxrd reduce` writes: the derived
    runs go to their spools, and the command says so (exit 1, each spool named), never "stored".
    The spools then replay into the catalog."""
    from conftest import tables_held

    from trxrd.cli import main

    scan["writer"].close()
    monkeypatch.setenv("TRXRD_DATA", str(scan["root"]))
    lo, hi = scan["window"]
    with tables_held(scan["root"] / "catalog" / "tables.db"):
        rc = main(["reduce", scan["uid"][:8], "--poni", str(scan["poni"]), "--mask", str(scan["mask"]),
                   "--window", f"{lo}:{hi}"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "stored, linked by" not in out and "NOT stored" in out and "trxrd recover" in out
    assert main(["recover", str(scan["root"] / "spool")]) == 0
    assert "spools in the catalog" in capsys.readouterr().out
    assert not list((scan["root"] / "spool").glob("*.jsonl"))
