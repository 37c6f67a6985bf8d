"""The ``trxrd`` command: simulated beamline, demo and (later) run browsing/reduction."""
