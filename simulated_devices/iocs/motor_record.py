"""A motor record that behaves like the EPICS motor record, so that an unmodified
``ophyd.EpicsMotor`` (and any CA client) drives it as it would a real axis.

caproto's own motor record only serves the fields; this one adds event-driven,
velocity-limited motion and the semantics clients rely on: soft limits (HLM/LLM, served
as the control limits of VAL), hardware travel limits (HLS/LLS), STOP, SPMG, tweak,
home, SET/USE calibration, user offset and direction, DMOV/MOVN/TDIR/MSTA.

EXAMPLE (an IOC with one axis, in mm)::

    from caproto.server import PVGroup, pvproperty
    from trxrd.simulated_devices.iocs.motor_record import motor_property, configure_motor

    class Stage(PVGroup):
        m1 = motor_property("m1", "stage x")

        @m1.startup
        async def m1(self, instance, async_lib):
            await configure_motor(instance, egu="mm", velocity=10.0,
                                  travel=(0.0, 300.0), position=75.0)
"""
from __future__ import annotations

import asyncio
import math
from typing import Callable

from caproto import ChannelType, SkipWrite
from caproto.server import pvproperty
from caproto.server.menus import motorDIR, motorFOFF, motorSET, motorSPMG
from caproto.server.records import MotorFields, register_record

UPDATE_PERIOD_S = 0.02        # readback updates during a move
MSTA_DIRECTION, MSTA_DONE, MSTA_PLUS_LS = 0x1, 0x2, 0x4
MSTA_PRESENT, MSTA_MOVING, MSTA_MINUS_LS, MSTA_HOMED = 0x100, 0x400, 0x2000, 0x4000


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


@register_record
class SimMotorFields(MotorFields):
    """Motor record fields with motion; registered as record type 'motor'."""

    _record_type = "motor"

    stop = pvproperty(name="STOP", dtype=ChannelType.INT, doc="Stop")
    stop_pause_move_go = pvproperty(name="SPMG", dtype=ChannelType.ENUM,
                                    enum_strings=motorSPMG.get_string_tuple(), value="Go",
                                    doc="Stop/Pause/Move/Go")
    user_high_limit = pvproperty(name="HLM", dtype=ChannelType.DOUBLE, doc="User High Limit")
    user_low_limit = pvproperty(name="LLM", dtype=ChannelType.DOUBLE, doc="User Low Limit")
    dial_high_limit = pvproperty(name="DHLM", dtype=ChannelType.DOUBLE, doc="Dial High Limit")
    dial_low_limit = pvproperty(name="DLLM", dtype=ChannelType.DOUBLE, doc="Dial Low Limit")
    velocity = pvproperty(name="VELO", dtype=ChannelType.DOUBLE, doc="Velocity (EGU/s)")
    user_offset = pvproperty(name="OFF", dtype=ChannelType.DOUBLE, doc="User Offset (EGU)")
    user_direction = pvproperty(name="DIR", dtype=ChannelType.ENUM,
                                enum_strings=motorDIR.get_string_tuple(), value="Pos",
                                doc="User Direction")
    set_use_switch = pvproperty(name="SET", dtype=ChannelType.ENUM,
                                enum_strings=motorSET.get_string_tuple(), value="Use",
                                doc="Set/Use Switch")
    offset_freeze_switch = pvproperty(name="FOFF", dtype=ChannelType.ENUM,
                                      enum_strings=motorFOFF.get_string_tuple(),
                                      value="Variable", doc="Offset-Freeze Switch")
    tweak_step_size = pvproperty(name="TWV", dtype=ChannelType.DOUBLE, doc="Tweak Step Size (EGU)")
    tweak_motor_forward = pvproperty(name="TWF", dtype=ChannelType.INT, doc="Tweak motor Forward")
    tweak_motor_reverse = pvproperty(name="TWR", dtype=ChannelType.INT, doc="Tweak motor Reverse")
    home_forward = pvproperty(name="HOMF", dtype=ChannelType.INT, doc="Home Forward")
    home_reverse = pvproperty(name="HOMR", dtype=ChannelType.INT, doc="Home Reverse")
    limit_violation = pvproperty(name="LVIO", dtype=ChannelType.INT, read_only=True,
                                 doc="Limit violation")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._task: asyncio.Task | None = None
        self.travel = (-math.inf, math.inf)  # hardware travel, dial coordinates
        self.home_dial = 0.0
        self.dial = 0.0
        self.on_position: Callable[[float], None] | None = None   # physics hook (dial)
        self._homed = False

    # ---- coordinates ----------------------------------------------------------------
    @property
    def _sign(self) -> int:
        return -1 if self.user_direction.value == "Neg" else 1

    def _user(self, dial: float) -> float:
        return self._sign * dial + self.user_offset.value

    def _dial(self, user: float) -> float:
        return (user - self.user_offset.value) * self._sign

    async def _set_val(self, user: float) -> None:
        await self.parent.write(user, verify_value=False, update_fields=False)

    async def _publish(self, moving: bool, direction: int | None = None) -> None:
        dial = self.dial
        lo, hi = self.travel
        at_hi, at_lo = dial >= hi - 1e-12, dial <= lo + 1e-12
        user_hi, user_lo = (at_hi, at_lo) if self._sign > 0 else (at_lo, at_hi)
        await self.user_readback_value.write(self._user(dial), verify_value=False)   # where the axis is, limits or not
        await self.dial_readback_value.write(dial)
        mres = self.motor_step_size.value or 1e-6
        await self.raw_readback_value.write(int(round(dial / mres)))
        if direction is not None:
            await self.direction_of_travel.write(direction)
        if self.user_high_limit_switch.value != int(user_hi):
            await self.user_high_limit_switch.write(int(user_hi))
        if self.user_low_limit_switch.value != int(user_lo):
            await self.user_low_limit_switch.write(int(user_lo))
        msta = MSTA_PRESENT
        msta |= MSTA_DIRECTION if self.direction_of_travel.value else 0
        msta |= MSTA_MOVING if moving else MSTA_DONE
        msta |= MSTA_PLUS_LS if at_hi else 0
        msta |= MSTA_MINUS_LS if at_lo else 0
        msta |= MSTA_HOMED if self._homed else 0
        await self.motor_status.write(msta)
        if self.on_position is not None:
            self.on_position(dial)

    async def _limits_to_metadata(self) -> None:
        lo, hi = self.user_low_limit.value, self.user_high_limit.value
        await self.parent.write_metadata(lower_ctrl_limit=lo, upper_ctrl_limit=hi)
        await self.user_readback_value.write_metadata(lower_ctrl_limit=lo, upper_ctrl_limit=hi)
        d = sorted((self._dial(lo), self._dial(hi)))
        await self.dial_low_limit.write(d[0], verify_value=False)
        await self.dial_high_limit.write(d[1], verify_value=False)

    # ---- motion ---------------------------------------------------------------------
    async def _run_move(self, target_dial: float, velocity: float) -> None:
        lo, hi = self.travel
        goal = min(max(target_dial, lo), hi)      # a hardware limit switch stops the axis
        start = self.dial
        distance = goal - start
        direction = 1 if distance >= 0 else 0
        duration = abs(distance) / velocity if velocity > 0 else 0.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self.motor_is_moving.write(1)
        await self._publish(True, direction)
        try:
            while True:
                elapsed = loop.time() - t0
                if elapsed >= duration:
                    self.dial = goal
                    break
                self.dial = start + distance * elapsed / duration
                await self._publish(True)
                await asyncio.sleep(min(UPDATE_PERIOD_S, duration - elapsed))
        except asyncio.CancelledError:
            await self._publish(True)
            raise
        await self._finish()

    async def _finish(self) -> None:
        await self._publish(False)
        if self.dial != self._dial(self.parent.value):
            # stopped at a hardware limit: VAL follows the position, as the record does
            await self._set_val(self._user(self.dial))
        await self.motor_is_moving.write(0)
        await self.done_moving_to_value.write(1)

    async def _start_move(self, target_user: float, velocity: float | None = None) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.done_moving_to_value.write(0)
        if self.stop_pause_move_go.value in ("Stop", "Pause"):
            await self._finish()
            return
        velocity = self.velocity.value if velocity is None else velocity
        self._task = asyncio.create_task(self._run_move(self._dial(target_user), velocity))

    async def _halt(self, keep_target: bool) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if not keep_target:
            await self._set_val(self._user(self.dial))
        await self._publish(False)
        await self.motor_is_moving.write(0)
        await self.done_moving_to_value.write(1)

    async def value_write_hook(self, instance, value):
        """A put to VAL: move (completing the put when done) or, in SET mode, recalibrate."""
        if self.set_use_switch.value == "Set":
            # calibration: redefine the user position without moving
            if self.offset_freeze_switch.value == "Variable":
                await self.user_offset.write(value - self._sign * self.dial, verify_value=False)
                await self._limits_to_metadata()
            await self._publish(False)
            return
        await self.limit_violation.write(0)
        await self._set_val(value)          # VAL reads the new target during the move
        await self._start_move(value)
        await self._wait_move()             # a put with callback completes when the move is done
        raise SkipWrite()                   # VAL is already stored (and a STOP may have reset it)

    async def _wait_move(self) -> None:
        task = self._task
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            pass   # stopped or superseded by a new target

    # ---- field putters ----------------------------------------------------------------
    @stop.putter
    async def stop(self, instance, value):
        if value:
            await self._halt(keep_target=False)
        return 0

    @stop_pause_move_go.putter
    async def stop_pause_move_go(self, instance, value):
        if value == "Stop":
            await self._halt(keep_target=False)
        elif value == "Pause":
            await self._halt(keep_target=True)
        elif abs(self._dial(self.parent.value) - self.dial) > 1e-12:
            await instance.write(value, verify_value=False)   # Move/Go: resume the move
            await self._start_move(self.parent.value)
        return value

    async def _accept_limit(self, instance, value, what: str) -> float:
        value = _finite(value, what)
        await instance.write(value, verify_value=False)
        await self._limits_to_metadata()      # soft limits = control limits of VAL
        return value

    @user_high_limit.putter
    async def user_high_limit(self, instance, value):
        return await self._accept_limit(instance, value, "HLM")

    @user_low_limit.putter
    async def user_low_limit(self, instance, value):
        return await self._accept_limit(instance, value, "LLM")

    @velocity.putter
    async def velocity(self, instance, value):
        value = _finite(value, "VELO")
        if value <= 0:
            raise ValueError(f"VELO must be positive, got {value}")
        vmax = self.max_velocity.value
        return min(value, vmax) if vmax > 0 else value

    @user_offset.putter
    async def user_offset(self, instance, value):
        value = _finite(value, "OFF")
        shift = value - self.user_offset.value
        await instance.write(value, verify_value=False)
        # the record keeps the dial position: user values move with the offset
        await self.user_high_limit.write(self.user_high_limit.value + shift, verify_value=False)
        await self.user_low_limit.write(self.user_low_limit.value + shift, verify_value=False)
        await self._limits_to_metadata()
        await self._set_val(self.parent.value + shift)
        await self._publish(False)
        return value

    @user_direction.putter
    async def user_direction(self, instance, value):
        target_dial = self._dial(self.parent.value)
        lo_dial, hi_dial = self._dial(self.user_low_limit.value), self._dial(self.user_high_limit.value)
        await instance.write(value, verify_value=False)
        a, b = sorted((self._user(lo_dial), self._user(hi_dial)))
        await self.user_low_limit.write(a, verify_value=False)
        await self.user_high_limit.write(b, verify_value=False)
        await self._limits_to_metadata()
        await self._set_val(self._user(target_dial))
        await self._publish(False)
        return value

    @tweak_motor_forward.putter
    async def tweak_motor_forward(self, instance, value):
        if value:
            await self.parent.write(self.parent.value + self.tweak_step_size.value)
        return 0

    @tweak_motor_reverse.putter
    async def tweak_motor_reverse(self, instance, value):
        if value:
            await self.parent.write(self.parent.value - self.tweak_step_size.value)
        return 0

    async def _home(self) -> None:
        await self._set_val(self._user(self.home_dial))
        await self._start_move(self._user(self.home_dial), self.home_velocity.value or self.velocity.value)
        await self._wait_move()
        self._homed = True
        await self.at_home.write(1)
        await self.home_forward.write(0, verify_value=False)
        await self.home_reverse.write(0, verify_value=False)
        await self._publish(False)

    @home_forward.putter
    async def home_forward(self, instance, value):
        if value:
            asyncio.get_running_loop().create_task(self._home())
        return value

    @home_reverse.putter
    async def home_reverse(self, instance, value):
        if value:
            asyncio.get_running_loop().create_task(self._home())
        return value


def motor_property(name: str, doc: str, value: float = 0.0, precision: int = 4) -> pvproperty:
    """A motor record pvproperty (VAL is the user set point)."""
    return pvproperty(name=name, value=value, record="motor", precision=precision, doc=doc,
                      dtype=ChannelType.DOUBLE)


async def configure_motor(instance, *, egu: str, velocity: float, travel: tuple[float, float],
                          position: float, description: str = "", resolution: float = 1e-4,
                          home_dial: float | None = None,
                          on_position: Callable[[float], None] | None = None) -> None:
    """Initialise a motor record at IOC start: units, speed, travel (= soft limits),
    position, and an optional physics hook called with every new dial position."""
    f: SimMotorFields = instance.field_inst
    f.travel = (float(travel[0]), float(travel[1]))
    f.home_dial = float(travel[0] if home_dial is None else home_dial)
    f.dial = float(position)
    f.on_position = on_position
    await f.engineering_units.write(egu)
    await f.description.write(description[:40])
    await f.motor_step_size.write(resolution)
    await f.max_velocity.write(velocity * 5)
    await f.velocity.write(velocity)
    await f.home_velocity.write(velocity)
    await f.base_velocity.write(0.0)
    await f.tweak_step_size.write(1.0)
    await f.retry_deadband.write(resolution)
    await f.limit_violation.write(0, verify_value=False)
    await f.user_low_limit.write(travel[0])
    await f.user_high_limit.write(travel[1])
    await f._set_val(position)
    await f.done_moving_to_value.write(1, verify_value=False)
    await f._publish(False, 1)
