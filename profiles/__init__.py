"""The beamline IPython profile, shipped as package data (``trxrd shell`` installs it)."""
