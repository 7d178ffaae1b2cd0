"""matcher.kernels.cuda against matcher.kernels.cpu and the numpy reference in reference_iris.py.

numba reads ``NUMBA_ENABLE_CUDASIM`` once, when ``numba.cuda`` is first imported, and other tests in
this process may have imported it already. So every check that launches a kernel runs in a fresh
interpreter: the test runs this file as a script, ``python tests/kernels/test_cuda.py CHECK``, with
``NUMBA_ENABLE_CUDASIM=1`` (numba's CUDA simulator, which runs the kernels' Python on the CPU). On a
GPU host, ``AMAYESH_CUDA_TEST_DEVICE=1`` runs the same checks on the real device instead. Input
validation needs no device and runs in this process.

The simulator is slow (a Python thread per CUDA thread), so galleries are a few hundred rows.
Every CUDA result must equal the CPU kernel's bit for bit (both compute ``d / v`` in float64), and
the numpy reference's where the contracts overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matcher.errors import DeviceUnavailable, InvalidTemplate
from matcher.iris import IrisGeometry, pack_codes, probe_rotations, shift_order

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK_TIMEOUT_S = 240  # a hang guard only: each check takes a few seconds under the simulator
SKIP_EXIT = 77  # what a check exits with when this host cannot run it (no NVVM for the PTX check)

GEOMETRY = IrisGeometry(8, 128, 2)  # W = 32 words, 16-bit column stride
MAX_SHIFT = 5
MIN_BITS = 256
N_ROWS = 300  # not a multiple of the gallery's lanes: the last block is partly empty

# Geometries for the 1:1 kernel: every kind of column stride, padding, and a one-word code.
PAIR_GEOMETRIES = [
    IrisGeometry(8, 128, 2),  # stride 16, W 32
    IrisGeometry(3, 64, 2),  # 6 bits padded to stride 8, W 8
    IrisGeometry(1, 64, 1),  # stride 1, W 1: every rotation wraps inside one word
    IrisGeometry(4, 32, 1),  # stride 4, W 2
    IrisGeometry(32, 16, 2),  # stride 64: rotations are whole words
    IrisGeometry(40, 16, 2),  # 80 bits padded to stride 128
]


# ------------------------------------------------------------------------------------------
# Helpers shared by the checks (run in the subprocess).
# ------------------------------------------------------------------------------------------


def _random(rng: np.random.Generator, shape: tuple[int, ...], p_true: float) -> np.ndarray:
    return rng.random(shape) < p_true


def _column_mask(geometry: IrisGeometry, first: int, n_columns: int) -> np.ndarray:
    """A mask valid on ``n_columns`` whole columns from ``first`` on (circularly), nothing else."""
    mask = np.zeros(geometry.shape, bool)
    mask[:, (first + np.arange(n_columns)) % geometry.columns, :] = True
    return mask


def _assert_same(got: tuple, want: tuple, what: str) -> None:
    for name, g, w in zip(("hd", "shift/row", "n_bits", "4th"), got, want, strict=False):
        assert g.shape == w.shape, f"{what}: {name} shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{what}: {name} dtype {g.dtype} != {w.dtype}"
        np.testing.assert_array_equal(g, w, err_msg=f"{what}: {name} differs")


def _pair_cases(geometry: IrisGeometry, rng: np.random.Generator):
    """Bool (a, am, b, bm), max_shift, min_bits, and what some rows must come out as."""
    max_shift = min(8, (geometry.columns - 1) // 2)  # below columns / 2: +s and -s never alias
    shape = geometry.shape
    n_random = 4
    a = [_random(rng, shape, 0.5) for _ in range(n_random)]
    am = [_random(rng, shape, 0.8) for _ in range(n_random)]
    b = [_random(rng, shape, 0.5) for _ in range(n_random)]
    bm = [_random(rng, shape, 0.8) for _ in range(n_random)]
    cb = geometry.column_bits
    k_cols = max(2, geometry.columns // 4)
    min_bits = k_cols * cb
    expect = {}
    # b is a rotated by exactly +max_shift / -max_shift, a few bits flipped: the boundary shifts.
    for s in (max_shift, -max_shift):
        code = _random(rng, shape, 0.5)
        flipped = np.roll(code, s, axis=1) ^ _random(rng, shape, 0.05)
        expect[len(a)] = ("shift", s)
        a.append(code)
        am.append(np.ones(shape, bool))
        b.append(flipped)
        bm.append(np.ones(shape, bool))
    # All of a masked: no rotation counts, NaN, 0 bits.
    expect[len(a)] = ("nan", 0)
    a.append(_random(rng, shape, 0.5))
    am.append(np.zeros(shape, bool))
    b.append(_random(rng, shape, 0.5))
    bm.append(np.ones(shape, bool))
    # Exactly min_bits in common at one shift only (s = -2; every other shift overlaps less).
    expect[len(a)] = ("shift", -2)
    a.append(_random(rng, shape, 0.5))
    am.append(_column_mask(geometry, 0, k_cols))
    b.append(_random(rng, shape, 0.5))
    bm.append(_column_mask(geometry, -2, k_cols))
    stack = [np.stack(x) for x in (a, am, b, bm)]
    return stack, max_shift, min_bits, expect


def _gallery_fixture(rng: np.random.Generator):
    """An IrisGallery of N_ROWS codes with adversarial rows, and the probes that exercise them.

    Probe 0 is random. Rows 17 and 42 hold probe 0 rotated by exactly +MAX_SHIFT and -MAX_SHIFT;
    rows 100, 250 and 280 hold probe 0 itself (hd 0 ties, broken by row); row 5 is an all-zero code
    with a full mask (every rotation ties: shift index 0); row 7 is removed (all-masked tombstone).
    Probe 1 is valid on exactly MIN_BITS bits (16 columns); row 60 overlaps it on exactly MIN_BITS
    bits at shift -2 only; every random row overlaps it on fewer.
    """
    from matcher.gallery import IrisGallery

    shape = GEOMETRY.shape
    codes = _random(rng, (N_ROWS, *shape), 0.5)
    masks = _random(rng, (N_ROWS, *shape), 0.8)
    p0_code, p0_mask = _random(rng, shape, 0.5), _random(rng, shape, 0.8)
    p1_code, p1_mask = _random(rng, shape, 0.5), _column_mask(GEOMETRY, 0, MIN_BITS // 16)
    for row, s in ((17, MAX_SHIFT), (42, -MAX_SHIFT), (100, 0), (250, 0), (280, 0)):
        codes[row] = np.roll(p0_code, s, axis=1)
        masks[row] = np.roll(p0_mask, s, axis=1)
    codes[5], masks[5] = False, True
    masks[60] = _column_mask(GEOMETRY, -2, MIN_BITS // 16)
    gallery = IrisGallery(GEOMETRY, MAX_SHIFT, min_valid_bits=MIN_BITS)
    gallery.add(np.arange(N_ROWS) + 1000, codes, masks)
    gallery.remove([1007])
    masks[7] = False  # what the tombstone means, for the reference
    gc, gm, n_rows, _ = gallery._snapshot()
    assert n_rows == N_ROWS < gc.shape[0] * gc.shape[2] and gc.shape[1] == gallery.words
    rotations = [
        probe_rotations(c, m, GEOMETRY, MAX_SHIFT, gallery.groups)
        for c, m in ((p0_code, p0_mask), (p1_code, p1_mask))
    ]
    probes = [(p0_code, p0_mask), (p1_code, p1_mask)]
    return gc, gm, codes, masks, probes, rotations


def _reference_topk(hd: np.ndarray, shift: np.ndarray, bits: np.ndarray, n_rows: int, k: int):
    rows = np.flatnonzero(np.isfinite(hd[:n_rows]))
    rows = rows[np.lexsort((rows, hd[rows]))][:k]
    pad = k - rows.size
    return (
        np.concatenate([hd[rows], np.full(pad, np.inf)]),
        np.concatenate([rows, np.full(pad, -1)]),
        np.concatenate([shift[rows], np.zeros(pad, int)]),
        np.concatenate([bits[rows], np.zeros(pad, int)]),
    )


# ------------------------------------------------------------------------------------------
# Checks: each runs in a fresh interpreter (see the module docstring) and raises on a mismatch.
# ------------------------------------------------------------------------------------------


def check_pairs() -> None:
    from matcher.kernels import cpu
    from matcher.kernels import cuda as kc
    from tests.reference_iris import hd_reference

    assert kc.available()
    rng = np.random.default_rng(20240611)
    for geometry in PAIR_GEOMETRIES:
        (a, am, b, bm), max_shift, min_bits, expect = _pair_cases(geometry, rng)
        packed = [pack_codes(x, geometry) for x in (a, am, b, bm)]
        stride = geometry.column_stride_bits
        what = f"pairs {geometry.shape} stride {stride}"
        for mb in (min_bits, min_bits + 1):
            got = kc.iris_pairs(*packed, stride, max_shift, mb)
            _assert_same(got, cpu.iris_pairs(*packed, stride, max_shift, mb), f"{what} min {mb}")
            ref = [hd_reference(a[i], am[i], b[i], bm[i], max_shift, mb) for i in range(len(a))]
            np.testing.assert_array_equal(got[0], [r[0] for r in ref], err_msg=f"{what}: hd")
            np.testing.assert_array_equal(got[1], [r[1] for r in ref], err_msg=f"{what}: shift")
            np.testing.assert_array_equal(got[2], [r[2] for r in ref], err_msg=f"{what}: bits")
        got = kc.iris_pairs(*packed, stride, max_shift, min_bits)
        for i, (kind, value) in expect.items():
            if kind == "nan":
                assert np.isnan(got[0][i]) and got[1][i] == 0 and got[2][i] == value, what
            else:
                assert got[1][i] == value and np.isfinite(got[0][i]), (what, i, got[1][i])
        # One more bit needed than the exact-overlap pair has anywhere: NaN, bits = best seen.
        i_exact = max(expect)
        got = kc.iris_pairs(*packed, stride, max_shift, min_bits + 1)
        assert np.isnan(got[0][i_exact]) and got[1][i_exact] == 0 and got[2][i_exact] == min_bits


def check_scan_all() -> None:
    from matcher.kernels import cpu
    from matcher.kernels import cuda as kc
    from tests.reference_iris import gallery_reference

    assert kc.available()
    gc, gm, codes, masks, probes, rotations = _gallery_fixture(np.random.default_rng(7))
    n_total = gc.shape[0] * gc.shape[2]
    for p, ((code, mask), (shifts, pc, pm)) in enumerate(zip(probes, rotations, strict=True)):
        for mb in (MIN_BITS, MIN_BITS + 1):
            got = kc.iris_scan_all(gc, gm, pc, pm, mb)
            _assert_same(got, cpu.iris_scan_all(gc, gm, pc, pm, mb), f"scan_all probe {p} min {mb}")
            hd, sidx, bits = got
            assert hd.shape == (n_total,)
            empty = slice(N_ROWS, n_total)  # lanes past the last row: no bits, never a distance
            assert np.isinf(hd[empty]).all() and not sidx[empty].any() and not bits[empty].any()
            assert np.isinf(hd[7]) and sidx[7] == 0 and bits[7] == 0  # the tombstone
            ref_hd, ref_shift, ref_bits = gallery_reference(code, mask, codes, masks, MAX_SHIFT, mb)
            np.testing.assert_array_equal(hd[:N_ROWS], ref_hd, err_msg=f"probe {p} min {mb}: hd")
            fin = np.isfinite(ref_hd)
            np.testing.assert_array_equal(shifts[sidx[:N_ROWS]][fin], ref_shift[fin])
            np.testing.assert_array_equal(bits[:N_ROWS][fin], ref_bits[fin])
            assert not sidx[:N_ROWS][~fin].any() and not bits[:N_ROWS][~fin].any()
    # The adversarial rows, spelled out.
    order = list(shift_order(MAX_SHIFT))
    hd, sidx, bits = kc.iris_scan_all(gc, gm, rotations[0][1], rotations[0][2], MIN_BITS)
    assert hd[17] == 0 and sidx[17] == order.index(MAX_SHIFT)
    assert hd[42] == 0 and sidx[42] == order.index(-MAX_SHIFT)
    assert hd[100] == hd[250] == 0 and sidx[100] == sidx[250] == 0
    assert sidx[5] == 0 and np.isfinite(hd[5])  # every rotation ties: the first one is kept
    hd, sidx, bits = kc.iris_scan_all(gc, gm, rotations[1][1], rotations[1][2], MIN_BITS)
    assert np.isfinite(hd[60]) and sidx[60] == order.index(-2) and bits[60] == MIN_BITS
    assert set(np.flatnonzero(np.isfinite(hd))) == {5, 60}
    hd, _, _ = kc.iris_scan_all(gc, gm, rotations[1][1], rotations[1][2], MIN_BITS + 1)
    assert np.isinf(hd).all()


def check_scan_topk() -> None:
    from matcher.kernels import cpu
    from matcher.kernels import cuda as kc
    from tests.reference_iris import gallery_reference

    assert kc.available()
    gc, gm, codes, masks, probes, rotations = _gallery_fixture(np.random.default_rng(11))
    shifts = rotations[0][0]
    pc = np.stack([r[1] for r in rotations])
    pm = np.stack([r[2] for r in rotations])
    refs = [gallery_reference(c, m, codes, masks, MAX_SHIFT, MIN_BITS) for c, m in probes]
    # n_rows below the filled rows (280 holds probe 0 but lies past 260) and at the true count;
    # k of 1, a few (hd-0 ties broken by row), and more than there are finite rows (padding).
    for n_rows, k in ((N_ROWS, 1), (N_ROWS, 4), (260, 6), (N_ROWS, N_ROWS + 50)):
        got = kc.iris_scan_topk(gc, gm, n_rows, pc, pm, k, MIN_BITS)
        what = f"topk n_rows {n_rows} k {k}"
        _assert_same(got, cpu.iris_scan_topk(gc, gm, n_rows, pc, pm, k, MIN_BITS), what)
        hd, rows, sidx, bits = got
        assert hd.shape == rows.shape == (2, k)
        assert (rows < n_rows).all()
        for p, (ref_hd, ref_shift, ref_bits) in enumerate(refs):
            want = _reference_topk(ref_hd, ref_shift, ref_bits, n_rows, k)
            found = rows[p] >= 0
            np.testing.assert_array_equal(hd[p], want[0], err_msg=f"{what} probe {p}: hd")
            np.testing.assert_array_equal(rows[p], want[1], err_msg=f"{what} probe {p}: rows")
            np.testing.assert_array_equal(np.where(found, shifts[sidx[p]], 0), want[2])
            np.testing.assert_array_equal(bits[p], want[3], err_msg=f"{what} probe {p}: bits")
    hd, rows, _, _ = kc.iris_scan_topk(gc, gm, N_ROWS, pc, pm, 6, MIN_BITS)
    assert list(rows[0, :5]) == [17, 42, 100, 250, 280] and not hd[0, :5].any()
    assert set(rows[1, :2]) == {5, 60}  # the only rows probe 1 overlaps on MIN_BITS bits
    assert list(rows[1, 2:]) == [-1] * 4 and np.isinf(hd[1, 2:]).all()
    # No row reaches MIN_BITS + 1 with probe 1: all padding.
    hd, rows, sidx, bits = kc.iris_scan_topk(gc, gm, N_ROWS, pc[1:], pm[1:], 3, MIN_BITS + 1)
    assert np.isinf(hd).all() and (rows == -1).all() and not sidx.any() and not bits.any()


def check_compiles_to_ptx() -> None:
    """Type the kernels for a real GPU (the simulator runs them as Python and would not notice)."""
    from numba import cuda, types
    from numba.cuda.cudadrv.error import NvvmSupportError

    from matcher.kernels import cuda as kc

    u2, u3 = types.uint64[:, ::1], types.uint64[:, :, ::1]
    i32, f64, i64 = types.int32[::1], types.float64[::1], types.int64
    signatures = {
        kc._pairs_kernel: (u2, u2, u2, u2, i64, types.int64[::1], i64, f64, i32, i32),
        kc._scan_all_kernel: (u3, u3, u2, u2, i64, f64, i32, i32),
    }
    for kernel, sig in signatures.items():
        try:  # compute capability 7.5: the oldest that current CUDA toolkits still target
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(7, 5))
        except NvvmSupportError as exc:
            print(f"no NVVM on this host: {exc}")
            sys.exit(SKIP_EXIT)
        assert "popc.b64" in ptx, kernel.py_func.__name__


CHECKS = {
    f.__name__: f for f in (check_pairs, check_scan_all, check_scan_topk, check_compiles_to_ptx)
}


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


@pytest.mark.parametrize("name", ["check_pairs", "check_scan_all", "check_scan_topk"])
def test_cuda_kernels_match_cpu_and_reference(name: str) -> None:
    _run_check(name, simulate=True)


def test_kernels_compile_for_a_real_gpu() -> None:
    _run_check("check_compiles_to_ptx", simulate=False)


def test_import_needs_no_gpu() -> None:
    from matcher.kernels import cuda as kc

    assert isinstance(kc.available(), bool)


def test_import_without_numba_cuda_at_all() -> None:
    """numba without its CUDA target (no numba-cuda): import works, wrappers raise our error."""
    code = (
        "import sys; sys.modules['numba.cuda'] = None\n"
        "import numpy as np\n"
        "from matcher.errors import MatcherError\n"
        "from matcher.kernels import cuda as kc\n"
        "assert kc.available() is False\n"
        "g, p = np.zeros((1, 32, 64), np.uint64), np.zeros((3, 32), np.uint64)\n"
        "try:\n"
        "    kc.iris_scan_all(g, g, p, p, 256)\n"
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


def _words(*shape: int, dtype: type = np.uint64) -> np.ndarray:
    return np.zeros(shape, dtype)


_OK = _words(4, 32)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((_words(4, 32, dtype=np.int64), _OK, _OK, _OK, 16), id="dtype"),
        pytest.param((_OK, _words(4, 31), _OK, _OK, 16), id="shape"),
        pytest.param((_OK, _OK, _OK, _words(4, 64)[:, ::2], 16), id="strided"),
        pytest.param((_words(32), _words(32), _words(32), _words(32), 16), id="1-D"),
        pytest.param((_OK, _OK, _OK, _OK, 24), id="stride 24"),
        pytest.param((_OK, _OK, _OK, _OK, 0), id="stride 0"),
        pytest.param((_words(4, 0),) * 4 + (16,), id="no words"),
    ],
)
def test_pairs_rejects_bad_input(args: tuple) -> None:
    from matcher.kernels import cuda as kc

    with pytest.raises(InvalidTemplate):
        kc.iris_pairs(*args, 8, 256)


def test_pairs_rejects_negative_max_shift() -> None:
    from matcher.kernels import cuda as kc

    with pytest.raises(InvalidTemplate):
        kc.iris_pairs(_words(1, 32), _words(1, 32), _words(1, 32), _words(1, 32), 16, -1, 256)


@pytest.mark.parametrize(
    "gallery, probe",
    [
        pytest.param(
            (_words(2, 32, 128), _words(2, 32, 128)),
            (_words(3, 31), _words(3, 31)),
            id="probe words",
        ),
        pytest.param(
            (_words(2, 32, 128), _words(2, 32, 128, dtype=np.int64)),
            (_words(3, 32), _words(3, 32)),
            id="gallery dtype",
        ),
        pytest.param(
            (_words(32, 256), _words(32, 256)), (_words(3, 32), _words(3, 32)), id="gallery 2-D"
        ),
        pytest.param(
            (_words(2, 32, 256)[:, :, ::2], _words(2, 32, 128)),
            (_words(3, 32), _words(3, 32)),
            id="gallery strided",
        ),
        pytest.param(
            (_words(2, 32, 128), _words(2, 32, 128)),
            (_words(1, 3, 32), _words(1, 3, 32)),
            id="probe 3-D",
        ),
    ],
)
def test_scan_all_rejects_bad_input(gallery: tuple, probe: tuple) -> None:
    from matcher.kernels import cuda as kc

    with pytest.raises(InvalidTemplate):
        kc.iris_scan_all(*gallery, *probe, 256)


def test_scan_topk_rejects_bad_input() -> None:
    from matcher.kernels import cuda as kc

    g, p = _words(2, 32, 128), _words(1, 3, 32)
    with pytest.raises(InvalidTemplate):
        kc.iris_scan_topk(g, g, 256, p[0], p[0], 5, 256)  # one probe's (S, W), not (P, S, W)
    with pytest.raises(InvalidTemplate):
        kc.iris_scan_topk(g, g, 256, p, p, -1, 256)


def test_empty_inputs_need_no_device() -> None:
    from matcher.kernels import cuda as kc

    hd, shift, bits = kc.iris_pairs(*[_words(0, 32)] * 4, 16, 8, 256)
    assert hd.shape == shift.shape == bits.shape == (0,)
    g, p = _words(0, 32, 128), _words(2, 3, 32)
    hd, rows, sidx, bits = kc.iris_scan_topk(g, g, 0, p, p, 4, 256)
    assert np.isinf(hd).all() and (rows == -1).all() and hd.shape == (2, 4)
    assert not sidx.any() and not bits.any()
    assert kc.iris_scan_all(g, g, p[0], p[0], 256)[0].shape == (0,)


def test_without_a_device_the_wrappers_raise_our_error() -> None:
    from matcher.kernels import cuda as kc

    if kc.available():
        pytest.skip("a CUDA device (or the simulator) is available in this process")
    g, p = _words(1, 32, 128), _words(3, 32)
    with pytest.raises(DeviceUnavailable, match="CUDA"):
        kc.iris_scan_all(g, g, p, p, 256)


if __name__ == "__main__":
    CHECKS[sys.argv[1]]()
