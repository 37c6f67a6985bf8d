"""Pump-probe delay: the optical delay stage, the electronic delay generator and one
``delay`` axis in ps that uses whichever reaches the requested delay.

Sign convention: positive delay = X-ray probe arrives after the pump. Moving the stage to
larger positions makes the delay larger: ``delay_ps = n_passes * (x - x0) / c``
(``n_passes`` = 2 for a retro-reflector, ``x0`` = time-zero position of the stage, mm).
The electronic delay adds ``DG:Delay`` (s) on top, with the stage parked at time zero.

Time zero is set from the current stage position with ``set_time_zero()`` and persisted in
``$TRXRD_DATA/state.json``, so it survives a restart of the session.

EXAMPLE::

    from trxrd.acquisition.devices.delay import PumpProbeDelay
    delay = PumpProbeDelay("TRX:", name="delay")
    delay.wait_for_connection(timeout=10)
    RE(bps.mv(delay, 100.0))        # ps: stage 15 mm after time zero
    RE(bps.mv(delay, 3e6))          # 3 us: stage at time zero, generator 3 us
    delay.delay.position            # actual delay from the readbacks (ps)
"""
from __future__ import annotations

from pathlib import Path

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, EpicsSignal, EpicsSignalRO, PVPositionerIsClose, Signal
from ophyd.pseudopos import PseudoPositioner, PseudoSingle, pseudo_position_argument, real_position_argument

from ..plans.metadata import finite
from ..settings import load_state, update_state

C_MM_PER_PS = 299792458.0 * 1e3 * 1e-12       # speed of light, mm/ps
DEFAULT_TIME_ZERO_MM = 150.0                   # used until set_time_zero() was called once


def stage_delay_ps(position_mm, time_zero_mm: float, n_passes: int):
    """Optical delay (ps) of the stage at *position_mm*; see the module's sign convention."""
    return n_passes * (position_mm - time_zero_mm) / C_MM_PER_PS


def stage_position_mm(delay_ps, time_zero_mm: float, n_passes: int):
    """Stage position (mm) that gives *delay_ps*."""
    return time_zero_mm + delay_ps * C_MM_PER_PS / n_passes


class _TimeZero(Device):
    """Time zero (stage position, mm) and number of passes as configuration signals,
    loaded from and saved to the persisted state (section ``delay``)."""

    time_zero_mm = Cpt(Signal, value=DEFAULT_TIME_ZERO_MM, kind="config")
    n_passes = Cpt(Signal, value=2, kind="config")

    def __init__(self, prefix="", *, name, time_zero_mm=DEFAULT_TIME_ZERO_MM, n_passes=2,
                 state_root=None, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        self._state_root = Path(state_root) if state_root is not None else None
        saved = load_state(self._state_root).get("delay", {})
        self.time_zero_mm.put(float(saved.get("time_zero_mm", time_zero_mm)))
        self.n_passes.put(int(saved.get("n_passes", n_passes)))

    def set_time_zero(self, position_mm: float | None = None) -> float:
        """Declare the stage's current position (or *position_mm*) as time zero and save it.
        Returns the new time-zero position (mm)."""
        pos = self._stage_axis().position if position_mm is None else position_mm
        pos = finite(pos, "time-zero position", unit="mm")
        self.time_zero_mm.put(pos)
        update_state("delay", {"time_zero_mm": pos, "n_passes": int(self.n_passes.get())},
                     self._state_root)
        return pos

    def _to_ps(self, position_mm):
        return stage_delay_ps(position_mm, self.time_zero_mm.get(), self.n_passes.get())

    def _to_mm(self, delay_ps):
        return stage_position_mm(delay_ps, self.time_zero_mm.get(), self.n_passes.get())

    def stage_reach_ps(self) -> tuple[float, float]:
        """Delays (ps) the stage reaches within its soft limits."""
        lo, hi = self._stage_axis().limits
        return self._to_ps(lo), self._to_ps(hi)


class DelayStage(_TimeZero, PseudoPositioner):
    """Optical delay stage (``DLY:m1``, mm) with a pseudo axis ``delay`` in ps."""

    delay = Cpt(PseudoSingle, egu="ps", kind="hinted")
    motor = Cpt(EpicsMotor, "DLY:m1", kind="normal")
    def _stage_axis(self):
        return self.motor

    @pseudo_position_argument
    def forward(self, pseudo_pos):
        return self.RealPosition(motor=self._to_mm(pseudo_pos.delay))

    @real_position_argument
    def inverse(self, real_pos):
        return self.PseudoPosition(delay=self._to_ps(real_pos.motor))


class ElectronicDelay(PVPositionerIsClose):
    """Delay generator that shifts the laser trigger: ``DG:Delay`` (s), done when
    ``Delay_RBV`` (rounded to the generator's resolution) is within 6 ps of it.
    Moving it switches the output on."""

    setpoint = Cpt(EpicsSignal, "Delay", kind="normal")
    readback = Cpt(EpicsSignalRO, "Delay_RBV", kind="hinted")
    enable = Cpt(EpicsSignal, "Enable", string=True, kind="config")

    def __init__(self, prefix="", *, name, max_s: float = 1e-5, **kwargs):
        super().__init__(prefix, name=name, atol=6e-12, egu="s", limits=(0.0, max_s), **kwargs)

    def _setup_move(self, position):
        if self.enable.get() != "On":
            self.enable.put("On", wait=True)
        super()._setup_move(position)

    def applied_s(self) -> float:
        """Delay the generator adds now (0 when its output is off), s."""
        return self.readback.get() if self.enable.get() == "On" else 0.0


class PumpProbeDelay(_TimeZero, PseudoPositioner):
    """One pump-probe ``delay`` axis in ps (components ``optical``: the stage, ``generator``), from the stage's reach below time zero
    (about -1 ns) up to the generator's maximum (10 us).

    Delays the stage reaches are made with the stage (generator at 0, fs precision);
    longer ones with the generator (10 ps steps) and the stage parked at time zero. The
    readback is the actual delay: stage readback + generator readback.
    """

    delay = Cpt(PseudoSingle, egu="ps", kind="hinted")
    optical = Cpt(EpicsMotor, "DLY:m1", kind="normal")
    generator = Cpt(ElectronicDelay, "DG:", kind="normal")
    def _stage_axis(self):
        return self.optical

    def reach_ps(self) -> tuple[float, float]:
        """(lowest, highest) delay this axis can reach now, ps."""
        lo, hi = self.stage_reach_ps()
        return lo, max(hi, self.generator.limits[1] * 1e12)

    def check_value(self, pseudo_pos):
        value = pseudo_pos[0] if isinstance(pseudo_pos, (tuple, list)) else pseudo_pos
        value = finite(value, f"{self.name} delay", unit="ps")
        lo, hi = self.reach_ps()
        if not lo <= value <= hi:
            raise ValueError(f"{self.name}: delay {value:g} ps is outside the reachable range "
                             f"{lo:.1f} .. {hi:.4g} ps (stage limits {self.optical.limits} mm, "
                             f"time zero {self.time_zero_mm.get():.4f} mm)")
        super().check_value(pseudo_pos)

    @pseudo_position_argument
    def forward(self, pseudo_pos):
        t = pseudo_pos.delay
        lo, hi = self.stage_reach_ps()
        if t <= hi:
            return self.RealPosition(optical=self._to_mm(t), generator=0.0)
        return self.RealPosition(optical=self.time_zero_mm.get(), generator=t * 1e-12)

    @real_position_argument
    def inverse(self, real_pos):
        generator_s = real_pos.generator if self.generator.enable.get() == "On" else 0.0
        return self.PseudoPosition(delay=self._to_ps(real_pos.optical) + generator_s * 1e12)
