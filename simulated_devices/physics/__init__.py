"""Sample physics of the simulated beamline: plain numpy, no caproto.

Every parameter is ground truth from one sample file (``sample.toml``); a test reads the
same file and checks that the reduction recovers it. ``beamline.BeamlineModel`` joins the
pieces into what each detector sees.
"""
from .config import default_config_path, dump_config, load_config

__all__ = ["default_config_path", "dump_config", "load_config"]
