"""Beamline acquisition: ophyd devices (``acquisition.devices``), bluesky plans
(``acquisition.plans``) and suspenders, written for the real EPICS records. The simulated
beamline (``trxrd sim``) serves the same PVs, so dry runs use this code unchanged.
"""
