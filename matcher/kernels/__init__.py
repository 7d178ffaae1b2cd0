"""Matching kernels: ``cpu`` (numba njit, parallel, nogil), ``cuda`` (numba.cuda), one contract."""
