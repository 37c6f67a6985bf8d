"""Bluesky plans of the trxrd beamline, one family per module."""
