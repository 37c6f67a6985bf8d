"""Pump laser: half-wave plate rotation (motor record, deg), power meter and the laser
itself (shutter, repetition rate).

PVs: ``{P}WP:m1``; ``{P}PM:Power_RBV`` (W), ``{P}PM:Wavelength`` (nm);
``{P}LSR:Shutter``, ``{P}LSR:Shutter_RBV``, ``{P}LSR:RepRate_RBV`` (Hz).

EXAMPLE::

    trxrd sim --list-pvs | grep -E 'WP|PM|LSR'
"""
from __future__ import annotations

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from ._common import checked, readback
from .motor_record import configure_motor, motor_property


class WaveplateIOC(PVGroup):
    """Motorised half-wave plate in front of a polariser."""

    m1 = motor_property("m1", "half-wave plate rotation")

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @m1.startup
    async def m1(self, instance, async_lib):
        w = self.model.cfg["waveplate"]

        def on_position(dial_deg: float) -> None:
            self.model.waveplate_deg = dial_deg

        await configure_motor(instance, egu="deg", velocity=w["velocity_deg_s"],
                              travel=(w["low_deg"], w["high_deg"]), position=self.model.waveplate_deg,
                              description="half-wave plate", resolution=1e-3,
                              home_dial=0.0, on_position=on_position)


class PowerMeterIOC(PVGroup):
    """Thermal power meter behind the attenuator (reads the average pump power)."""

    power = readback("Power_RBV", "Average pump power after the attenuator (W)", units="W", precision=6)
    wavelength = pvproperty(name="Wavelength", value=400.0, units="nm", precision=1,
                            doc="Wavelength the meter's calibration is set to (nm)")

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @power.scan(period=0.1)
    async def power(self, instance, async_lib):
        noise = self.model.cfg["laser"]["power_noise_relative"]
        p = self.model.power_w() * (1.0 + self.model.rng.normal(0.0, noise))
        await instance.write(max(p, 0.0))

    @wavelength.putter
    async def wavelength(self, instance, value):
        return checked(value, "PM:Wavelength", low=190.0, high=11000.0, unit="nm")


class PumpLaserIOC(PVGroup):
    """Pump laser: safety shutter and repetition rate."""

    shutter = pvproperty(name="Shutter", value="Closed", dtype=ChannelType.ENUM,
                         enum_strings=("Closed", "Open"), doc="Pump shutter command")
    shutter_rbv = pvproperty(name="Shutter_RBV", value="Closed", dtype=ChannelType.ENUM,
                             enum_strings=("Closed", "Open"), read_only=True,
                             doc="Pump shutter state")
    rep_rate = readback("RepRate_RBV", "Pump repetition rate (Hz)", units="Hz", precision=1)

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @rep_rate.startup
    async def rep_rate(self, instance, async_lib):
        await instance.write(self.model.cfg["laser"]["rep_rate_hz"])

    @shutter.putter
    async def shutter(self, instance, value):
        self.model.shutter_open = value == "Open"
        await self.shutter_rbv.write(value)
        return value
