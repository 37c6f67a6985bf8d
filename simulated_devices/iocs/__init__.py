"""caproto PVGroups, one per simulated instrument; ``launcher`` composes them.

Each group only maps PVs onto ``trxrd.simulated_devices.physics.BeamlineModel``; the physics
lives there.
"""
import os

# caproto batches monitor updates for up to 10 ms under load; the simulator answers promptly
# instead (read by caproto.server at import, so it is set before any PVGroup is imported).
os.environ.setdefault("CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC", "0.001")
