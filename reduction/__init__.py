"""Reduction library: pure functions on numpy arrays (no bluesky imports); bluesky
callbacks wrap them in ``trxrd.reduction.callbacks``."""
