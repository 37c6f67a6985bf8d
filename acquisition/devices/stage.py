"""Sample stage: two motor-record axes in um (``SMP:x`` across the jet, ``SMP:y``).

EXAMPLE::

    from trxrd.acquisition.devices.stage import SampleStage
    stage = SampleStage("TRX:", name="sample")
    RE(bps.mv(stage.x, 120.0, stage.y, -40.0))      # um
"""
from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor


class SampleStage(Device):
    x = Cpt(EpicsMotor, "SMP:x", kind="hinted")
    y = Cpt(EpicsMotor, "SMP:y", kind="hinted")

    def __init__(self, prefix="", *, name, settle_time_s: float = 0.005, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        for axis in (self.x, self.y):
            axis.settle_time = settle_time_s       # avoids ophyd's back-to-back move race
