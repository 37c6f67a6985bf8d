"""Pump-probe delay: the optical delay stage, the electronic delay generator and one
``delay`` axis in ps that uses whichever reaches the requested delay.

Sign convention: positive delay = X-ray probe arrives after the pump. Moving the stage to
larger positions makes the delay larger: ``delay_ps = n_passes * (x - x0) / c``
(``n_passes`` = 2 for a retro-reflector, ``x0`` = time-zero position of the stage, mm).
The electronic delay adds ``DG:Delay`` (s) on top, with the stage parked at time zero.

Time zero is a user offset every client shares: ``set_time_zero()`` declares the current
stage position (or a given one, inside the stage's limits) as time zero. The device keeps no
files: it announces the change to ``subscribe(cb, event_type="time_zero")`` subscribers (the
beamline session saves it, so it survives a restart). Until it is set, time zero is
``DEFAULT_TIME_ZERO_MM``, the middle of a 300 mm stage, not a calibration.

EXAMPLE::

    from trxrd.acquisition.devices.delay import PumpProbeDelay
    delay = PumpProbeDelay("TRX:", name="pump")
    delay.wait_for_connection(timeout=10)
    RE(bps.mv(delay, 100.0))        # ps: stage 15 mm after time zero
    RE(bps.mv(delay, 3e6))          # 3 us: stage at time zero, generator 3 us
    delay.delay.position            # actual delay from the readbacks (ps)
    delay.set_time_zero(143.28)     # mm
"""
from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, PVPositionerIsClose, Signal
from ophyd.pseudopos import PseudoPositioner, PseudoSingle, pseudo_position_argument, real_position_argument

from ophyd.utils.errors import LimitError

from ...validation import finite
from ._signals import CheckedMotor, VerifiedSignal, ioc_limits, verify_setpoint

C_MM_PER_PS = 299792458.0 * 1e3 * 1e-12       # speed of light, mm/ps
DEFAULT_TIME_ZERO_MM = 150.0                   # middle of the travel, until set_time_zero()


def stage_delay_ps(position_mm, time_zero_mm: float, n_passes: int):
    """Optical delay (ps) of the stage at *position_mm*; see the module's sign convention."""
    return n_passes * (position_mm - time_zero_mm) / C_MM_PER_PS


def stage_position_mm(delay_ps, time_zero_mm: float, n_passes: int):
    """Stage position (mm) that gives *delay_ps*."""
    return time_zero_mm + delay_ps * C_MM_PER_PS / n_passes


class _TimeZero(Device):
    """Time zero (stage position, mm) and number of passes as configuration signals."""

    SUB_TIME_ZERO = "time_zero"
    time_zero_mm = Cpt(Signal, value=DEFAULT_TIME_ZERO_MM, kind="config")
    n_passes = Cpt(Signal, value=2, kind="config")

    def __init__(self, prefix="", *, name, time_zero_mm: float = DEFAULT_TIME_ZERO_MM, n_passes: int = 2,
                 **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        self.time_zero_mm.put(finite(time_zero_mm, f"{name} time_zero_mm", unit="mm"))
        if n_passes not in (1, 2, 4):
            raise ValueError(f"{name}: n_passes must be 1, 2 or 4 (passes of the beam over the stage), "
                             f"got {n_passes!r}")
        self.n_passes.put(int(n_passes))

    def set_time_zero(self, position_mm: float | None = None) -> float:
        """Declare the stage's current position (or *position_mm*) as time zero.

        Parameters
        ----------
        position_mm : float, optional
            Stage position of time zero (mm); it must lie inside the stage's soft limits.

        Returns
        -------
        float
            The new time-zero position (mm). Subscribers of ``"time_zero"`` are told.
        """
        axis = self._stage_axis()
        pos = axis.position if position_mm is None else position_mm
        pos = finite(pos, f"{self.name} time-zero position", unit="mm")
        lo, hi = axis.limits
        if not hi > lo:
            raise ValueError(f"{self.name}: the stage publishes no soft limits ({lo} .. {hi} mm), so time zero "
                             f"{pos} mm cannot be checked against its travel; nothing changed")
        if not lo <= pos <= hi:
            raise ValueError(f"{self.name}: time zero {pos} mm is outside the stage's limits "
                             f"{lo} .. {hi} mm; nothing changed")
        self.time_zero_mm.put(pos)
        self._run_subs(sub_type=self.SUB_TIME_ZERO, time_zero_mm=pos, n_passes=int(self.n_passes.get()))
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
    """Optical delay stage (``DLY:m1``, mm) with a pseudo axis ``delay`` in ps.

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline.
    name : str
        Device name.
    time_zero_mm : float
        Stage position of time zero (mm) until ``set_time_zero``.
    n_passes : int
        Passes of the beam over the stage (2 for a retro-reflector).

    EXAMPLE::

        stage = DelayStage("TRX:", name="stage"); RE(bps.mv(stage.delay, 50.0))     # ps
    """

    delay = Cpt(PseudoSingle, egu="ps", kind="hinted")
    motor = Cpt(CheckedMotor, "DLY:m1", kind="normal")
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
    Moving it switches the output on.

    Parameters
    ----------
    prefix : str
        PV prefix of the generator (``TRX:DG:``).
    name : str
        Device name.
    max_s : float
        Largest delay (s).

    EXAMPLE::

        dg = ElectronicDelay("TRX:DG:", name="dg"); RE(bps.mv(dg, 3e-6))      # s
    """

    setpoint = Cpt(VerifiedSignal, "Delay", kind="normal")
    readback = Cpt(EpicsSignalRO, "Delay_RBV", kind="hinted")
    enable = Cpt(EpicsSignal, "Enable", string=True, kind="config")

    def __init__(self, prefix="", *, name, max_s: float = 1e-5, **kwargs):
        super().__init__(prefix, name=name, atol=6e-12, egu="s", limits=(0.0, max_s), **kwargs)

    @property
    def limits(self) -> tuple[float, float]:
        """(0, ``max_s``) narrowed to the generator's own range (its DRVL/DRVH), s."""
        low, high = self._limits
        ioc = ioc_limits(self.setpoint) if self.setpoint.connected else None
        return (max(low, ioc[0]), min(high, ioc[1])) if ioc else (low, high)

    def check_value(self, pos):
        """*pos* (s) must be finite and inside ``limits``, else ``ValueError`` naming them."""
        pos = finite(pos, f"{self.name} delay", unit="s")
        low, high = self.limits
        if not low <= pos <= high:
            raise LimitError(f"{self.name}: delay {pos:g} s is outside the generator's range {low:g} .. {high:g} s")

    def _setup_move(self, position):
        """Write the delay; one the generator refuses or clips raises ``SetpointRefused``
        (the readback would never come within tolerance: the move would wait for ever)."""
        if self.enable.get() != "On":
            self.enable.put("On", wait=True)
        super()._setup_move(position)
        verify_setpoint(self.setpoint, position, self.setpoint.get(use_monitor=False), unit="s", atol=1e-15)

    def applied_s(self) -> float:
        """Delay the generator adds now (0 when its output is off), s."""
        return self.readback.get() if self.enable.get() == "On" else 0.0


class PumpProbeDelay(_TimeZero, PseudoPositioner):
    """One pump-probe ``delay`` axis in ps (components ``optical``: the stage, ``generator``),
    from the stage's reach below time zero (about -1 ns) up to the generator's maximum (10 us).

    Delays the stage reaches are made with the stage (generator at 0, fs precision);
    longer ones with the generator (10 ps steps) and the stage parked at time zero. The
    readback is the actual delay: stage readback + generator readback.

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``DLY:m1`` and ``DG:`` below it).
    name : str
        Device name; the delay's data key is ``<name>_delay``.
    time_zero_mm : float
        Stage position of time zero (mm) until ``set_time_zero``.
    n_passes : int
        Passes of the beam over the stage (2 for a retro-reflector).

    EXAMPLE::

        delay = PumpProbeDelay("TRX:", name="pump")
        RE(bps.mv(delay.delay, 100.0))        # ps
    """

    delay = Cpt(PseudoSingle, egu="ps", kind="hinted")
    optical = Cpt(CheckedMotor, "DLY:m1", kind="normal")
    generator = Cpt(ElectronicDelay, "DG:", kind="normal")
    def _stage_axis(self):
        return self.optical

    def set(self, *args, **kwargs):
        """Move to a delay (ps): one number (or a one-element sequence), checked first."""
        if len(args) == 1 and not isinstance(args[0], self.PseudoPosition):
            if isinstance(args[0], (list, tuple, dict, set)) or getattr(args[0], "ndim", 0):
                raise ValueError(f"{self.name}: a delay is one number (ps), got {args[0]!r:.60}")
            args = (finite(args[0], f"{self.name} delay", unit="ps"),)
        return super().set(*args, **kwargs)

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
