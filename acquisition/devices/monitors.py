"""Beam monitors: the I0 ion chamber (``I0:Current_RBV``, A). Like a gated scaler, it holds
the flux of the last detector exposure, so read it after the detector in the same event.

EXAMPLE::

    from trxrd.acquisition.devices.monitors import I0Monitor
    i0 = I0Monitor("TRX:", name="i0")
    i0.get()          # A
"""
from __future__ import annotations

from ophyd import EpicsSignalRO

BEAM_FLOOR_A = 1e-12     # an I0 current below this: no X-ray beam (dump, front-end shutter closed)


class I0Monitor(EpicsSignalRO):
    """The I0 ion chamber current (A) of the last exposure.

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``I0:Current_RBV`` below it).
    name : str
        Device name (the data key).

    beam_floor_a : float
        Below this current (A) there is no beam: the beam suspender pauses, and a pump-probe
        frame whose I0 reads below it is invalid and taken again. Default ``BEAM_FLOOR_A``.

    EXAMPLE::

        i0 = I0Monitor("TRX:", name="i0"); i0.get()
    """

    def __init__(self, prefix: str = "", *, name: str, beam_floor_a: float = BEAM_FLOOR_A, **kwargs):
        kwargs.setdefault("kind", "hinted")
        super().__init__(prefix + "I0:Current_RBV", name=name, **kwargs)
        self.beam_floor_a = beam_floor_a
