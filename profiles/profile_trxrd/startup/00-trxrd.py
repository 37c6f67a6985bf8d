# trxrd beamline session: RE (catalog, BestEffortCallback, progress bars), cat, devices, plans.
# Start with `trxrd shell` or `ipython --profile-dir=profiles/profile_trxrd`.
# TRXRD_PREFIX selects the beamline (default TRX:, the simulator); TRXRD_DATA the data folder.
from trxrd.acquisition.session import start_session

globals().update(start_session())
