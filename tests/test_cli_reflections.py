"""``trxrd thermometer`` and ``trxrd reflections`` on detector files: a heating series and a
delay scan of the PbSe sample written by the physics model (no IOC), the JSON the commands
promise, and one error line with exit status 2 for each kind of bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_cli_reduction import _set_delay, write_h5, write_table
from trxrd.cli import main
from trxrd.simulated_devices.physics import load_config
from trxrd.simulated_devices.physics.beamline import BeamlineModel

DELAYS_PS = [-10.0, -5.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 30.0, 40.0]
TEMPERATURES_C = [-180.0, -150.0, -120.0, -90.0, -60.0]
REFLECTIONS = ["200:1.99:2.13", "220:2.84:2.98", "222:3.49:3.63"]
SAMPLE = "PbSe QDs, 10 nm, oleate, film at 90 K"


@pytest.fixture(scope="module")
def pbse(tmp_path_factory):
    """Heating-series and delay-scan files of the PbSe sample at 90 K, with their tables."""
    model = BeamlineModel(load_config("pbse-90k"), seed=7)
    model.jet.run = True
    model.jet.advance(10.0)
    model.waveplate_deg = model.cfg["laser"]["theta0_deg"] + 30.0      # <N> ~ 12
    root = tmp_path_factory.mktemp("pbse")
    poni, mask = model.waxs.write_calibration(root / "calib", "waxs")
    frames, rows = [], []
    for t in TEMPERATURES_C:
        model.cell.cell_c = t
        for _ in range(2):
            frames.append(model.waxs_frame(exposure_s=0.1))
            rows.append({"frame": len(rows), "temperature_c": repr(t), "i0": repr(model.i0_current_a())})
    heat = {"file": str(write_h5(root / "heat.h5", np.stack(frames))),
            "table": str(write_table(root / "heat.csv", rows, columns=("frame", "temperature_c", "i0")))}
    model.cell.cell_c = model.cfg["heating_cell"]["ambient_c"]
    frames, rows = [], []
    for delay in DELAYS_PS:
        _set_delay(model, delay)
        for pump in ("on", "off"):
            model.shutter_open = pump == "on"
            frames.append(model.waxs_frame(exposure_s=0.1))
            rows.append({"frame": len(rows), "delay_ps": repr(delay), "pump": pump, "i0": repr(model.i0_current_a())})
    scan = {"file": str(write_h5(root / "scan.h5", np.stack(frames))),
            "table": str(write_table(root / "scan.csv", rows, columns=("frame", "delay_ps", "pump", "i0")))}
    return {"model": model, "root": root, "poni": str(poni), "mask": str(mask), "heat": heat, "scan": scan,
            "n_exc": model.excitations()}


def _refl(args):
    return [a for r in REFLECTIONS for a in ("--reflection", r)] + list(args)


@pytest.fixture(scope="module")
def thermometer(pbse):
    out = pbse["root"] / "thermometer.json"
    rc = main(["thermometer", pbse["heat"]["file"], "--poni", pbse["poni"], "--mask", pbse["mask"],
               "--table", pbse["heat"]["table"], "--sample", SAMPLE, "--out", str(out), *_refl([])])
    assert rc == 0
    return out


def test_thermometer_from_a_heating_series(pbse, thermometer):
    data = json.loads(thermometer.read_text())
    alpha = pbse["model"].cfg["sample"]["alpha_a_per_k"]
    for hkl in ("200", "220", "222"):
        cal = data["calibrations"][hkl]
        assert cal["quantity"] == f"q_{hkl}_inv_angstrom" and cal["sample"] == SAMPLE
        # q = 2 pi |hkl| / a(T): d ln q / dT = -alpha (relative to q at -180 C)
        assert cal["expansion_per_k"] == pytest.approx(-alpha, rel=0.05)
        assert cal["temperature_range_c"] == [-180.0, -60.0]


def test_reflections_json_and_thermometer(pbse, thermometer, tmp_path, capsys):
    out, png = tmp_path / "refl.json", tmp_path / "refl.png"
    rc = main(["reflections", pbse["scan"]["file"], "--poni", pbse["poni"], "--mask", pbse["mask"],
               "--table", pbse["scan"]["table"], "--thermometer", str(thermometer), "--sample", SAMPLE,
               "--json", str(out), "--plot", str(png), *_refl([])])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "tau shift" in text.out and png.stat().st_size > 10_000
    doc = json.loads(out.read_text())
    lat = pbse["model"].cfg["lattice_dynamics"]
    scale = pbse["n_exc"] / lat["reference_excitations"]
    assert [r["hkl"] for r in doc["reflections"]] == ["200", "220", "222"]
    for r in doc["reflections"]:
        k = lat["families"].index(r["hkl"])
        assert set(r) >= {"hkl", "q0", "tau_shift_ps", "tau_du2_ps", "du2_max_A2", "shift_max", "points"}
        assert r["tau_shift_ps"]["value"] == pytest.approx(lat["tau_expansion_ps"][k], rel=0.2), r["hkl"]
        assert r["shift_max"]["value"] == pytest.approx(-scale * lat["expansion"][k], rel=0.1), r["hkl"]
        assert r["du2_max_A2"]["value"] == pytest.approx(scale * lat["du2_a2"][k], rel=0.25), r["hkl"]
        assert len(r["points"]) == len(DELAYS_PS)
        assert set(r["points"][0]) >= {"delay_ps", "shift", "shift_err", "du2_A2", "du2_err", "fwhm", "fwhm_err"}
    assert len(doc["mean_du2"]) == len(doc["lattice"]) == len(doc["temperature_rise_K"]) == len(DELAYS_PS)
    late = doc["temperature_rise_K"][-1]
    # the thermometer's reflection (200) expands by `expansion` at 40 ps: dT = expansion / alpha
    expected = scale * lat["expansion"][lat["families"].index("200")] / pbse["model"].cfg["sample"]["alpha_a_per_k"]
    assert late["value"] == pytest.approx(expected, rel=0.15)
    assert doc["lattice"][-1]["a_change"]["value"] > 0


@pytest.mark.parametrize("case, extra, match", [
    ("outside", ["--reflection", "600:6.0:6.2"], "outside the data's q range"),
    ("overlap", ["--reflection", "111:2.05:2.2"], "overlapping"),
    ("syntax", ["--reflection", "2x0:1:2"], "three digits"),
    ("other reflection", ["--thermometer", "THERMO"], "none of which"),
    ("other sample", ["--thermometer", "THERMO_ALL", "--sample", "CuInSe2 NCs"], "measured on"),
])
def test_reflections_bad_input(case, extra, match, pbse, thermometer, tmp_path, capsys):
    base = ["reflections", pbse["scan"]["file"], "--poni", pbse["poni"], "--table", pbse["scan"]["table"]]
    if "THERMO" in extra:
        data = json.loads(thermometer.read_text())
        one = tmp_path / "t.json"
        one.write_text(json.dumps({"calibrations": {"400": data["calibrations"]["200"]}}))
        extra = ["--thermometer", str(one), "--reflection", REFLECTIONS[0]]
    elif "THERMO_ALL" in extra:
        extra = ["--thermometer", str(thermometer), "--sample", "CuInSe2 NCs", "--reflection", REFLECTIONS[0]]
    else:
        extra = [*extra, "--reflection", REFLECTIONS[0]]
    rc = main(base + extra)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and match in err, err


def test_too_few_delays_is_an_error(pbse, tmp_path, capsys):
    rows = [{"frame": i, "delay_ps": repr(DELAYS_PS[i // 2 % 3]), "pump": "on" if i % 2 == 0 else "off"}
            for i in range(2 * len(DELAYS_PS))]
    table = write_table(tmp_path / "few.csv", rows, columns=("frame", "delay_ps", "pump"))
    rc = main(["reflections", pbse["scan"]["file"], "--poni", pbse["poni"], "--table", str(table),
               "--reflection", REFLECTIONS[0]])
    assert rc == 2 and "too few" in capsys.readouterr().err
