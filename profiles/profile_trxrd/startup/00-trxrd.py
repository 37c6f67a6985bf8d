# trxrd beamline session: RE (catalog, BestEffortCallback, progress bars), cat, devices, plans,
# set_sample, set_reduction and the live reduction. `trxrd shell [--sim]` starts IPython with this
# profile (and may hand over its configuration as `trxrd_config`); a plain
# `ipython --profile-dir=profiles/profile_trxrd` configures it from TRXRD_* variables
# (see trxrd.session): TRXRD_PREFIX selects the beamline (default TRX:), TRXRD_DATA the data root.
import atexit as _atexit

from trxrd.session import SessionConfig as _SessionConfig
from trxrd.session import open_session as _open_session

session = _open_session(globals().pop("trxrd_config", None) or _SessionConfig.from_environ())
_atexit.register(session.close)
globals().update(session.namespace())
