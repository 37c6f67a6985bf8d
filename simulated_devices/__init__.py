"""Simulated beamline: caproto soft IOCs that serve the same EPICS records as the real
hardware, all driven by one sample-physics model (``trxrd.simulated_devices.physics``).

EXAMPLE (run every IOC under the TRX: prefix until Ctrl-C)::

    trxrd sim --prefix TRX: --data-dir /tmp/trx-data
"""
