"""One core for a benchmark: import this before numpy. It sets the thread counts numpy, BLAS and
pyFAI read to 1, and ``pin()`` pins the process to one CPU where the OS allows it.

EXAMPLE::

    import one_core  # noqa: F401  (first: before numpy)
    print(one_core.pin())          # "pinned to CPU 0"
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"


def pin() -> str:
    """Pin this process to its lowest allowed CPU; what was done, in words."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"
