"""The ``trxrd sim`` command's non-serving options."""
import subprocess
import sys
import tomllib


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trxrd.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_list_pvs_names_every_instrument(tmp_path):
    r = run("sim", "--list-pvs", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for pv in ("TRX:DLY:m1", "TRX:DG:Delay", "TRX:WP:m1", "TRX:PM:Power_RBV", "TRX:LSR:Shutter",
               "TRX:JET:Flowing_RBV", "TRX:TC:Temperature_RBV", "TRX:SYR:Infuse", "TRX:SMP:x",
               "TRX:I0:Current_RBV", "TRX:PIL:cam1:Acquire", "TRX:PIL:HDF1:FullFileName_RBV",
               "TRX:SAXS:HDF1:Capture"):
        assert pv in r.stdout
    assert (tmp_path / "waxs" / "waxs.poni").is_file()
    assert (tmp_path / "saxs" / "saxs_mask.edf").is_file()


def test_print_config_round_trips_overrides(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text("[pump_probe]\ntau1_ps = 120.0\n")
    r = run("sim", "--print-config", "--config", str(user), "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    cfg = tomllib.loads(r.stdout)
    assert cfg["pump_probe"]["tau1_ps"] == 120.0
    assert cfg["sample"]["a_angstrom"] == 5.78


def test_bad_config_is_one_clear_line(tmp_path):
    user = tmp_path / "bad.toml"
    user.write_text("[pump_probe]\ntau_one = 1.0\n")
    r = run("sim", "--print-config", "--config", str(user), "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "unknown key pump_probe.'tau_one'" in r.stderr
    assert "Traceback" not in r.stderr


def test_commands_close_the_catalog_they_open(tmp_path, monkeypatch, capsys):
    """An in-process ``main()`` (IPython, a script, the tests) closes the catalog its command
    opened: an embedded catalog's client holds two threads, which would pile up per call."""
    import threading

    from trxrd.catalog import open_catalog
    from trxrd.cli import main

    monkeypatch.setenv("TRXRD_DATA", str(tmp_path))
    monkeypatch.delenv("TRXRD_CATALOG", raising=False)
    open_catalog(root=tmp_path).context.close()
    assert main(["runs"]) == 0
    before = threading.active_count()
    for _ in range(5):
        assert main(["runs"]) == 0
        assert main(["show", "-1"]) == 2                 # no run: one clear line, the catalog closed too
    assert threading.active_count() <= before
    assert "no run matches" in capsys.readouterr().err
