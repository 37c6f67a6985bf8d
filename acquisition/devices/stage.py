"""Sample stage: two motor-record axes in um (``SMP:x`` across the jet, ``SMP:y``).

EXAMPLE::

    from trxrd.acquisition.devices.stage import SampleStage
    stage = SampleStage("TRX:", name="sample")
    RE(bps.mv(stage.x, 120.0, stage.y, -40.0))      # um
"""
from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device

from ._signals import CheckedMotor


class SampleStage(Device):
    """Sample stage, axes ``x`` and ``y`` (motor records, um).

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``SMP:x``, ``SMP:y`` below it).
    name : str
        Device name (data keys ``<name>_x``, ``<name>_y``).
    settle_time_s : float
        Settle time of each axis after a move (s).

    EXAMPLE::

        stage = SampleStage("TRX:", name="sample"); RE(bps.mv(stage.x, 120.0))
    """

    x = Cpt(CheckedMotor, "SMP:x", kind="hinted")
    y = Cpt(CheckedMotor, "SMP:y", kind="hinted")

    def __init__(self, prefix: str = "", *, name: str, settle_time_s: float = 0.005, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        for axis in (self.x, self.y):
            axis.settle_time = settle_time_s       # avoids ophyd's back-to-back move race
