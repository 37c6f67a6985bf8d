"""Ophyd devices of the trxrd beamline, one instrument family per module."""
