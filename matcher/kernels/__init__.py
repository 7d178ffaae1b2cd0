"""Matching kernels: ``cpu`` (numba njit, parallel, nogil), ``cuda`` (numba.cuda), one contract."""


def describe() -> dict[str, str]:
    """Which kernels this process uses, for the service's GetInfo."""
    import numba

    out = {
        "iris": "numba cpu (matcher.kernels.cpu)",
        "finger": "numba cpu (matcher.kernels.finger_cpu)",
        "numba": numba.__version__,
        "threads": str(numba.get_num_threads()),
    }
    try:
        from numba import cuda

        out["cuda"] = "available" if cuda.is_available() else "not available"
    except ImportError:
        out["cuda"] = "not installed"
    return out
