"""Pump-laser shutter: ``LSR:Shutter`` (command) / ``LSR:Shutter_RBV`` (state), values
``"Open"`` / ``"Closed"``. ``set`` is done when the state reads back what was commanded.
``expected`` remembers the last command so a suspender can tell an unexpected closure
(interlock, laser fault) from the plan's own pump-off frames.

EXAMPLE::

    from trxrd.acquisition.devices.shutter import PumpShutter
    shutter = PumpShutter("TRX:", name="pump_shutter")
    RE(bps.mv(shutter, "Open"))
"""
from __future__ import annotations

import numbers

from ophyd import EpicsSignal

STATES = ("Closed", "Open")


class PumpShutter(EpicsSignal):
    """Pump shutter as one signal: reads the state, writes the command.

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``LSR:Shutter`` and ``LSR:Shutter_RBV`` below it).
    name : str
        Device name (the data key).

    EXAMPLE::

        shutter = PumpShutter("TRX:", name="pump_shutter"); RE(bps.mv(shutter, "Open"))
    """

    def __init__(self, prefix: str = "", *, name: str, **kwargs):
        super().__init__(prefix + "LSR:Shutter_RBV", write_pv=prefix + "LSR:Shutter", string=True,
                         name=name, **kwargs)
        self.expected: str | None = None

    def set(self, value, **kwargs):
        value = self.normalise(value)
        self.expected = value
        return super().set(value, **kwargs)

    @staticmethod
    def normalise(value) -> str:
        """``"Open"``/``"Closed"`` from a state name, bool or 0/1."""
        if isinstance(value, str):
            for state in STATES:
                if value.strip().lower() == state.lower():
                    return state
        elif isinstance(value, numbers.Real) and value in (0, 1):     # bool, 0/1 (not an array)
            return STATES[int(value)]
        raise ValueError(f"pump shutter state must be 'Open' or 'Closed', got {value!r}")

    def open(self):
        return self.set("Open")

    def close(self):
        return self.set("Closed")
