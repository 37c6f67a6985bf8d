"""Beamline acquisition: ophyd devices (``trxrd.acquisition.devices``), bluesky plans
(``trxrd.acquisition.plans``) and suspenders, written for the real EPICS records. The simulated
beamline (``trxrd sim``) serves the same PVs, so dry runs use this code unchanged.
"""
