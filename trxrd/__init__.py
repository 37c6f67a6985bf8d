"""trxrd: beamline data acquisition and live reduction for pump-probe and in-situ X-ray
experiments on nanocrystals.

- ``trxrd.acquisition``: ophyd devices, bluesky plans, suspenders (the folder ``acquisition/``);
- ``trxrd.reduction``: pure reduction functions and the bluesky callbacks around them (``reduction/``);
- ``trxrd.simulated_devices``: caproto IOCs of the simulated beamline and its physics
  (``simulated_devices/``);
- ``trxrd.session``: the beamline session (RunEngine, catalog, devices, sample, live reduction);
- ``trxrd.catalog``, ``trxrd.datakeys``, ``trxrd.validation``, ``trxrd.state``: what both sides use;
- ``trxrd.cli`` and ``trxrd.demo``: the ``trxrd`` command (simulator, demo, shell, runs, offline
  and live reduction).
"""
