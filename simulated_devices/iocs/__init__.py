"""caproto PVGroups, one per simulated instrument; ``launcher`` composes them.

Each group only maps PVs onto ``simulated_devices.physics.BeamlineModel``; the physics
lives there.
"""
