"""matcher.kernels.finger_cuda against matcher.kernels.finger_cpu.

As in test_cuda.py, numba reads ``NUMBA_ENABLE_CUDASIM`` once, when ``numba.cuda`` is first
imported, so every check that launches a kernel runs in a fresh interpreter (``python
tests/kernels/test_finger_cuda.py CHECK`` with ``NUMBA_ENABLE_CUDASIM=1``; on a GPU host
``AMAYESH_CUDA_TEST_DEVICE=1`` runs them on the device). Input validation, and the replay of numba's
argsort that decides which tied pairs are scored, need no device and run in this process.

The simulator runs one Python thread per CUDA thread, so galleries are 8 templates of 10-25
minutiae. Every CUDA score must be within 1e-9 of the CPU kernel's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
import unittest.mock
from pathlib import Path

import numpy as np
import pytest

from matcher.errors import DeviceUnavailable, InvalidTemplate, MatcherError

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK_TIMEOUT_S = 240  # a hang guard only: each check takes seconds under the simulator
SKIP_EXIT = 77  # what a check exits with when this host cannot run it (no NVVM for the PTX check)
TOLERANCE = 1e-9


# ------------------------------------------------------------------------------------------
# Helpers shared by the checks (run in the subprocess).
# ------------------------------------------------------------------------------------------


def _csr(feats: list) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Offsets and flat gallery arrays of a list of FingerFeatures (as benchmarks/finger.py)."""
    offsets = np.zeros(len(feats) + 1, np.int64)
    offsets[1:] = np.cumsum([f.n for f in feats])
    cols = [f.kernel_args() for f in feats]
    gallery = (
        np.concatenate([c[0] for c in cols]),
        np.concatenate([c[1] for c in cols]),
        np.concatenate([c[2] for c in cols]),
        np.ascontiguousarray(np.concatenate([c[3] for c in cols], axis=1)),
        np.concatenate([c[4] for c in cols]),
    )
    return offsets, gallery


def _fixture():
    """A probe, 8 gallery templates and their features.

    Template 0 is the probe itself, 1 the probe placed again (genuine), 4 has no valid cylinder
    (three minutiae far apart), the others are unrelated prints of 10-25 minutiae, 6 a placed
    copy of 5.
    """
    from matcher.finger import FingerTemplate, features
    from tests.test_finger import H, W, moved, random_template

    rng = np.random.default_rng(20240917)
    probe = random_template(rng, 30)
    other = random_template(rng, 18)
    big = random_template(rng, 45)
    gallery = [
        probe,
        moved(probe, rng, 0.25, 12, -8),
        random_template(rng, 12),
        random_template(rng, 25),
        FingerTemplate(x=[20, 200, 380], y=[20, 400, 20], theta=[0, 1, 2], width=W, height=H),
        other,
        moved(other, rng, -0.3, -5, 10),
        random_template(rng, 10),
        big,
        moved(big, rng, 0.1, -15, 5),
    ]
    feats = [features(t) for t in gallery]
    assert feats[4].n == 0 and all(f.n > 0 for i, f in enumerate(feats) if i != 4)
    return features(probe), feats


def _compare(kc, fc, probe: tuple, offsets: np.ndarray, gallery: tuple, rows, what: str):
    rows = np.asarray(rows, np.int64)
    got = kc.scan(probe, offsets, gallery, rows)
    want = fc.scan(probe, offsets, gallery, rows)
    assert got.dtype == np.float64 and got.shape == rows.shape, what
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE, err_msg=what)
    assert ((got >= 0) & (got <= 1)).all(), what
    return got


# ------------------------------------------------------------------------------------------
# Checks: each runs in a fresh interpreter (see the module docstring) and raises on a mismatch.
# ------------------------------------------------------------------------------------------


def check_scan() -> None:
    from matcher.kernels import finger_cpu as fc
    from matcher.kernels import finger_cuda as kc

    assert kc.available()
    probe, feats = _fixture()
    offsets, gallery = _csr(feats)
    every = np.arange(len(feats))
    # The probe against every template: identical near 1, genuine above impostors, empty 0.
    got = _compare(kc, fc, probe.kernel_args(), offsets, gallery, every, "probe 0")
    assert got[0] > 0.9 and got[1] > max(got[2], got[3], got[5], got[6], got[7]), got
    assert got[4] == 0.0
    # Other probes (a genuine pair 5/6 among them); the empty template as probe scores 0.
    for p in (1, 5, 7, 8, 9):
        _compare(kc, fc, feats[p].kernel_args(), offsets, gallery, every, f"probe {p}")
    got = _compare(kc, fc, feats[4].kernel_args(), offsets, gallery, every, "empty probe")
    assert not got.any()
    # The matchable-cells check at other thresholds, so that pairs sit right at the cut (both
    # wrappers read the threshold from finger_cpu.min_matchable_cells at call time).
    default = fc.min_matchable_cells()
    for min_cells in (default - 8, default - 4, default + 4, default + 8):
        with unittest.mock.patch.object(fc, "min_matchable_cells", lambda m=min_cells: m):
            for p in (1, 9):
                args = feats[p].kernel_args()
                _compare(kc, fc, args, offsets, gallery, every, f"probe {p} min {min_cells}")
    # A subset of rows, reordered, with a repeat: out[r] belongs to rows[r].
    rows = [6, 0, 3, 3, 4, 1]
    got = _compare(kc, fc, probe.kernel_args(), offsets, gallery, rows, "subset")
    full = kc.scan(probe.kernel_args(), offsets, gallery, every)
    np.testing.assert_array_equal(got, full[rows])
    # More rows than one block holds: the grid's last block is partly empty.
    rows = np.arange(kc.THREADS_PER_BLOCK + 9) % len(feats)
    _compare(kc, fc, feats[6].kernel_args(), offsets, gallery, rows, "two blocks")
    # A gallery with no minutiae at all: every template empty, zero-size device arrays.
    empty_offsets, empty_gallery = _csr([feats[4], feats[4]])
    got = _compare(kc, fc, probe.kernel_args(), empty_offsets, empty_gallery, [1, 0], "no minutiae")
    assert not got.any()


def check_compiles_to_ptx() -> None:
    """Type the kernel for a real GPU (the simulator runs it as Python and would not notice)."""
    from numba import cuda
    from numba import types as nt
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv.error import NvvmSupportError

    from matcher.kernels import finger_cuda as kc

    f1, u1, u2 = nt.float64[::1], nt.uint64[::1], nt.uint64[:, ::1]
    i1, i64 = nt.int64[::1], nt.int64
    sig = (f1, f1, f1, u2, u1, i1, f1, f1, f1, u2, u1, i1, i64, f1, f1)
    # Device functions are compiled for the current device's compute capability; without a
    # driver, name one (7.5: the oldest that current CUDA toolkits still target).
    cc75 = types.SimpleNamespace(compute_capability=(7, 5))
    with unittest.mock.patch.object(dispatcher, "get_current_device", lambda: cc75):
        try:
            ptx, _ = cuda.compile_ptx(kc._scan_kernel.py_func, sig, cc=(7, 5))
        except NvvmSupportError as exc:
            print(f"no NVVM on this host: {exc}")
            sys.exit(SKIP_EXIT)
    assert "popc.b64" in ptx
    assert ".local" in ptx  # scratch in local memory
    # No ABI calls, but for libdevice's cos/sin slow path, taken only for arguments beyond about
    # 2**20 rad (the geometric check's rotations are differences of directions, within pi).
    called = re.findall(r"call\.uni[^,]*,\s*(\w+)", ptx)
    assert set(called) <= {"__internal_trig_reduction_slowpathd"}, called


CHECKS = {f.__name__: f for f in (check_scan, check_compiles_to_ptx)}


def _run_check(name: str, simulate: bool) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulate and not os.environ.get("AMAYESH_CUDA_TEST_DEVICE"):
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run(
        [sys.executable, __file__, name],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
    )
    if proc.returncode == SKIP_EXIT:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"


# ------------------------------------------------------------------------------------------
# Tests.
# ------------------------------------------------------------------------------------------


def test_scan_matches_cpu() -> None:
    _run_check("check_scan", simulate=True)


def test_kernel_compiles_for_a_real_gpu() -> None:
    _run_check("check_compiles_to_ptx", simulate=False)


def test_efficiency_order_is_stable_like_the_cpu() -> None:
    """Equal efficiencies keep pair order on both back ends (numpy's stable argsort is the rule)."""
    from matcher.kernels import finger_cuda as kc

    order_fn = getattr(kc._stable_order, "py_func", kc._stable_order)
    rng = np.random.default_rng(5)
    for n in range(0, 25):
        key = rng.choice(np.array([-0.5, -0.03125, -0.03125, -0.2, -1.0]), size=n)
        order = np.zeros(24, np.int32)
        order_fn(key, n, order)
        assert list(order[:n]) == list(np.argsort(key, kind="stable"))


def test_import_needs_no_gpu() -> None:
    from matcher.kernels import finger_cuda as kc

    assert isinstance(kc.available(), bool)


def test_import_without_numba_cuda_at_all() -> None:
    """numba without its CUDA target (no numba-cuda): import works, scan raises our error."""
    code = (
        "import sys; sys.modules['numba.cuda'] = None\n"
        "import numpy as np\n"
        "from matcher.errors import MatcherError\n"
        "from matcher.kernels import finger_cuda as kc\n"
        "assert kc.available() is False\n"
        "f = (np.zeros(3), np.zeros(3), np.zeros(3), np.zeros((6, 3), np.uint64),\n"
        "     np.zeros(3, np.uint64))\n"
        "try:\n"
        "    kc.scan(f, np.array([0, 3]), f, np.array([0]))\n"
        "except MatcherError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no error without numba.cuda')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr


def _feats(n: int) -> list[np.ndarray]:
    """Well-formed (X, Y_up, theta, bits, mask) of n minutiae."""
    return [
        np.arange(n, dtype=np.float64),
        np.zeros(n),
        np.full(n, 1.0),
        np.zeros((6, n), np.uint64),
        np.zeros(n, np.uint64),
    ]


def _with(n: int, index: int, value: np.ndarray) -> tuple[np.ndarray, ...]:
    arrays = _feats(n)
    arrays[index] = value
    return tuple(arrays)


_GOOD = tuple(_feats(5))
_OFFSETS = np.array([0, 2, 2, 5], np.int64)
_ROWS = np.array([2, 0], np.int64)


@pytest.mark.parametrize(
    "probe, offsets, gallery, rows",
    [
        pytest.param(_with(3, 0, np.zeros(3, np.float32)), _OFFSETS, _GOOD, _ROWS, id="X f32"),
        pytest.param(_GOOD, _OFFSETS, _with(5, 3, np.zeros((5, 6), np.uint64)), _ROWS, id="bits T"),
        pytest.param(
            _with(3, 3, np.zeros((6, 6), np.uint64)[:, ::2]), _OFFSETS, _GOOD, _ROWS, id="strided"
        ),
        pytest.param(_with(3, 4, np.zeros(3, np.int64)), _OFFSETS, _GOOD, _ROWS, id="mask i64"),
        pytest.param(_with(3, 1, np.zeros(4)), _OFFSETS, _GOOD, _ROWS, id="Y length"),
        pytest.param(_GOOD[:4], _OFFSETS, _GOOD, _ROWS, id="4 arrays"),
        pytest.param(list(range(5)), _OFFSETS, _GOOD, _ROWS, id="not arrays"),
        pytest.param(_GOOD, _OFFSETS, _with(5, 0, np.array([0, 1, np.nan, 3, 4])), _ROWS, id="NaN"),
        pytest.param(_with(3, 2, np.full(3, 13.0)), _OFFSETS, _GOOD, _ROWS, id="theta range"),
        pytest.param(_GOOD, _OFFSETS.astype(np.int32), _GOOD, _ROWS, id="offsets i32"),
        pytest.param(_GOOD, np.array([0, 3, 2, 5]), _GOOD, _ROWS, id="offsets decrease"),
        pytest.param(_GOOD, np.array([0, 2, 6]), _GOOD, _ROWS, id="offsets past end"),
        pytest.param(_GOOD, np.array([-1, 2, 5]), _GOOD, _ROWS, id="offsets negative"),
        pytest.param(_GOOD, np.zeros(0, np.int64), _GOOD, _ROWS[:0], id="offsets empty"),
        pytest.param(_GOOD, _OFFSETS, _GOOD, np.array([0, 3]), id="row past end"),
        pytest.param(_GOOD, _OFFSETS, _GOOD, np.array([-1]), id="row negative"),
        pytest.param(_GOOD, _OFFSETS, _GOOD, _ROWS.reshape(1, 2), id="rows 2-D"),
    ],
)
def test_scan_rejects_bad_input(
    probe: tuple, offsets: object, gallery: tuple, rows: object
) -> None:
    from matcher.kernels import finger_cuda as kc

    with pytest.raises(InvalidTemplate):
        kc.scan(probe, offsets, gallery, rows)  # type: ignore[arg-type]


def test_empty_rows_need_no_device() -> None:
    from matcher.kernels import finger_cuda as kc

    out = kc.scan(_GOOD, _OFFSETS, _GOOD, _ROWS[:0])
    assert out.shape == (0,) and out.dtype == np.float64


def test_without_a_device_the_wrapper_raises_our_error() -> None:
    from matcher.kernels import finger_cuda as kc

    if kc.available():
        pytest.skip("a CUDA device (or the simulator) is available in this process")
    with pytest.raises(DeviceUnavailable, match="CUDA"):
        kc.scan(_GOOD, _OFFSETS, _GOOD, _ROWS)
    assert issubclass(DeviceUnavailable, MatcherError)


if __name__ == "__main__":
    CHECKS[sys.argv[1]]()
