"""Iris codes: geometry, bit packing, rotation and the masked fractional Hamming distance.

An iris code is a boolean array of shape ``(rings, columns, bits)``: ``rings`` radial samples,
``columns`` angular samples (the axis a head tilt rotates) and ``bits`` phase bits per sample.
Its mask has the same shape; ``True`` marks a bit that is valid (not eyelid, lash or reflection).

Three forms, as in the rest of the matcher:

1. the boolean arrays extraction produces and tests read (:class:`IrisTemplate`);
2. the packed, match-ready ``uint64`` words the kernels read (:func:`pack_codes`);
3. the stored/wire form, which is the packed words plus the geometry (the service issue).

Packed layout
-------------
Column ``c`` holds ``rings * bits`` bits, padded to :attr:`IrisGeometry.column_stride_bits`
(a power of two up to 64, else a multiple of 64) so that columns never straddle a word
boundary unevenly. Columns are then ordered by ``c mod groups``: group ``g`` holds columns
``g, g + groups, g + 2*groups, ...``, each group a whole number of words. With ``groups=1`` this is
plain column-major order and a rotation by ``s`` columns is a rotation of the whole bit string by
``s * column_stride_bits`` bits (what the 1:1 kernel uses). With ``groups=G`` the first group is a
sample of every G-th column spread round the whole iris: because neighbouring columns of a real
code are strongly correlated, that sample keeps most of the code's degrees of freedom in 1/G of
its words, which is what the gallery's fast mode screens on.

Bits are little-endian within a word (bit ``i`` of the group's bit string is bit ``i % 64`` of word
``i // 64``); padding bits are zero in both code and mask, so they never count.

Distance
--------
``hamming_distance(a, am, b, bm, max_shift)`` is the minimum over ``s`` in
``[-max_shift, max_shift]`` of ``|(roll(a, s) ^ b) & roll(am, s) & bm| / |roll(am, s) & bm|``,
rolling along the column axis as ``np.roll(a, s, axis=1)`` does. Rotations whose overlap is below
``min_valid_bits`` do not count. Ties go to the smallest ``|s|``, then the negative ``s``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate
from matcher.iris_params import (
    DAUGMAN_REFERENCE_BITS,
    DEFAULT_MAX_SHIFT_COLUMNS,
    DEFAULT_MIN_VALID_BITS,
)

if sys.byteorder != "little":  # the packed form is defined little-endian; say so rather than lie
    raise ImportError("matcher.iris packs codes little-endian and needs a little-endian host")

BoolArray = npt.NDArray[np.bool_]
WordArray = npt.NDArray[np.uint64]

__all__ = [
    "IrisGeometry",
    "IrisTemplate",
    "hamming_distance",
    "hamming_distance_packed",
    "normalize_hd",
    "pack_codes",
    "unpack_codes",
    "shift_order",
    "probe_rotations",
    "validate_code_mask",
]


@dataclass(frozen=True)
class IrisGeometry:
    """Shape of an iris code: ``rings`` x angular ``columns`` x ``bits`` per sample.

    The default 8 x 128 x 2 = 2,048 bits is Daugman's code size. Rotation is over ``columns``.
    """

    rings: int = 8
    columns: int = 128
    bits: int = 2

    def __post_init__(self) -> None:
        for name in ("rings", "columns", "bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise InvalidTemplate(
                    f"IrisGeometry.{name} must be a positive integer, got {value!r}"
                )
            object.__setattr__(self, name, int(value))  # numpy integers become plain ints
        if (self.columns * self.column_stride_bits) % 64:
            raise InvalidTemplate(
                f"IrisGeometry{self.shape}: columns x padded column bits "
                f"({self.columns} x {self.column_stride_bits}) must fill whole 64-bit words"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.rings, self.columns, self.bits)

    @property
    def n_bits(self) -> int:
        """Bits in one code (before padding)."""
        return self.rings * self.columns * self.bits

    @property
    def column_bits(self) -> int:
        return self.rings * self.bits

    @property
    def column_stride_bits(self) -> int:
        """Bits one column occupies when packed: a power of two up to 64, else a multiple of 64."""
        cb = self.column_bits
        if cb <= 64:
            return 1 << (cb - 1).bit_length()
        return -(-cb // 64) * 64

    def group_words(self, groups: int = 1) -> int:
        """Words in one column group of the packed layout with ``groups`` groups."""
        self.check_groups(groups)
        return (self.columns // groups) * self.column_stride_bits // 64

    def words(self, groups: int = 1) -> int:
        """Words in one packed code with ``groups`` column groups."""
        return groups * self.group_words(groups)

    def check_groups(self, groups: int) -> None:
        if (
            groups < 1
            or self.columns % groups
            or ((self.columns // groups) * self.column_stride_bits) % 64
        ):
            raise InvalidTemplate(
                f"{groups} column groups do not divide {self.columns} columns into whole words"
            )

    def coarse_groups(self, coarse_words: int) -> int:
        """Largest number of column groups whose first group still has >= ``coarse_words`` words.

        1 when the geometry cannot be split (then the fast mode screens on the whole code).
        """
        best = 1
        for g in range(1, self.columns + 1):
            if self.columns % g == 0:
                try:
                    gw = self.group_words(g)
                except InvalidTemplate:
                    continue
                if gw >= coarse_words:
                    best = g
        return best


@dataclass(frozen=True)
class IrisTemplate:
    """An iris code as extraction produces it: boolean code and validity mask, plus the eye.

    ``code`` and ``mask`` are bool arrays of shape ``geometry.shape``; ``eye`` is "L" or "R".
    """

    code: BoolArray
    mask: BoolArray
    eye: str = "L"
    format_version: int = 1

    def geometry(self) -> IrisGeometry:
        return IrisGeometry(*self.code.shape)

    def validate(self, min_valid_bits: int = DEFAULT_MIN_VALID_BITS) -> None:
        if self.eye not in ("L", "R"):
            raise InvalidTemplate(f"eye must be 'L' or 'R', got {self.eye!r}")
        validate_code_mask(self.code, self.mask, self.geometry(), min_valid_bits)


def validate_code_mask(
    code: object,
    mask: object,
    geometry: IrisGeometry,
    min_valid_bits: int = DEFAULT_MIN_VALID_BITS,
    *,
    batch: bool = False,
    what: str = "code",
) -> tuple[BoolArray, BoolArray]:
    """Check one code/mask pair (or a batch) against ``geometry``; return them as bool arrays.

    Raises :class:`InvalidTemplate` naming the problem: not a bool array, wrong shape, shapes that
    differ, or fewer than ``min_valid_bits`` valid bits in any one mask.
    """
    for name, arr in (("code", code), ("mask", mask)):
        if not isinstance(arr, np.ndarray):
            raise InvalidTemplate(
                f"{what} {name} must be a numpy bool array, got {type(arr).__name__}"
            )
        if arr.dtype != np.bool_:
            raise InvalidTemplate(f"{what} {name} must have dtype bool, got {arr.dtype}")
    code, mask = cast(BoolArray, code), cast(BoolArray, mask)
    want = ((-1,) if batch else ()) + geometry.shape
    for name, arr in (("code", code), ("mask", mask)):
        if arr.ndim != len(want) or tuple(arr.shape[-3:]) != geometry.shape:
            raise InvalidTemplate(
                f"{what} {name} has shape {arr.shape}; expected "
                f"{'(n, ' if batch else '('}{', '.join(map(str, geometry.shape))}) "
                f"(rings, columns, bits)"
            )
    if code.shape != mask.shape:
        raise InvalidTemplate(
            f"{what} code shape {code.shape} differs from mask shape {mask.shape}"
        )
    valid = mask.reshape(mask.shape[0] if batch else 1, geometry.n_bits).sum(axis=1)
    if valid.size and int(valid.min()) < min_valid_bits:
        where = f" (item {int(valid.argmin())})" if batch else ""
        raise InvalidTemplate(
            f"{what} mask has only {int(valid.min())} valid bits{where}; "
            f"at least {min_valid_bits} are needed to compare it"
        )
    return code, mask


def pack_codes(arr: BoolArray, geometry: IrisGeometry, groups: int = 1) -> WordArray:
    """Pack bool codes or masks ``(..., rings, columns, bits)`` into uint64 ``(..., words)``.

    See the module docstring for the layout. Cost: one pass over the bits (numpy ``packbits``).
    """
    geometry.check_groups(groups)
    r, c, b = geometry.shape
    if arr.shape[-3:] != (r, c, b):
        raise InvalidTemplate(f"array shape {arr.shape} does not end in {geometry.shape}")
    lead = arr.shape[:-3]
    n = int(np.prod(lead, dtype=np.int64)) if lead else 1
    if n == 0:
        return np.zeros((*lead, geometry.words(groups)), np.uint64)
    cols = np.ascontiguousarray(arr.reshape(n, r, c, b).transpose(0, 2, 1, 3)).reshape(n, c, r * b)
    stride = geometry.column_stride_bits
    if stride != r * b:
        cols = np.concatenate([cols, np.zeros((n, c, stride - r * b), dtype=bool)], axis=2)
    grouped = cols.reshape(n, c // groups, groups, stride).transpose(0, 2, 1, 3)
    flat = np.ascontiguousarray(grouped).reshape(n, groups, -1)
    words = np.packbits(flat, axis=2, bitorder="little").view(np.uint64).reshape(n, -1)
    return words.reshape(*lead, words.shape[-1])


def unpack_codes(words: WordArray, geometry: IrisGeometry, groups: int = 1) -> BoolArray:
    """Inverse of :func:`pack_codes`."""
    geometry.check_groups(groups)
    r, c, b = geometry.shape
    w = geometry.words(groups)
    if words.dtype != np.uint64 or words.shape[-1] != w:
        raise InvalidTemplate(
            f"packed array must be uint64 with {w} words last, got {words.dtype} {words.shape}"
        )
    lead = words.shape[:-1]
    n = int(np.prod(lead, dtype=np.int64)) if lead else 1
    if n == 0:
        return np.zeros((*lead, r, c, b), bool)
    stride = geometry.column_stride_bits
    as_bytes = np.ascontiguousarray(words.reshape(n, groups, -1)).view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=2, bitorder="little").reshape(
        n, groups, c // groups, stride
    )
    cols = bits.transpose(0, 2, 1, 3).reshape(n, c, stride)[:, :, : r * b].astype(bool)
    out = cols.reshape(n, c, r, b).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(out).reshape(*lead, r, c, b)


def shift_order(max_shift: int) -> npt.NDArray[np.int32]:
    """Rotations in the order kernels try them, ``0, -1, 1, -2, 2, ...``; ties keep the first."""
    if isinstance(max_shift, bool) or not isinstance(max_shift, int | np.integer) or max_shift < 0:
        raise InvalidTemplate(f"max_shift must be a non-negative integer, got {max_shift!r}")
    order = [0]
    for s in range(1, int(max_shift) + 1):
        order += [-s, s]
    return np.asarray(order, dtype=np.int32)


def probe_rotations(
    code: BoolArray, mask: BoolArray, geometry: IrisGeometry, max_shift: int, groups: int = 1
) -> tuple[npt.NDArray[np.int32], WordArray, WordArray]:
    """The probe rotated once per search: ``(shifts, codes (S, W), masks (S, W))`` in shift order.

    ``codes[i]`` packs ``np.roll(code, shifts[i], axis=1)``. A gallery is never rotated.
    """
    if max_shift >= geometry.columns:
        raise InvalidTemplate(f"max_shift {max_shift} must be below the {geometry.columns} columns")
    shifts = shift_order(max_shift)
    rolled_c = np.stack([np.roll(code, int(s), axis=1) for s in shifts])
    rolled_m = np.stack([np.roll(mask, int(s), axis=1) for s in shifts])
    return shifts, pack_codes(rolled_c, geometry, groups), pack_codes(rolled_m, geometry, groups)


def normalize_hd(
    hd: npt.ArrayLike, n_bits: npt.ArrayLike, reference_bits: float = DAUGMAN_REFERENCE_BITS
) -> npt.NDArray[np.float64]:
    """Daugman's score normalisation: ``0.5 - (0.5 - hd) * sqrt(n_bits / reference_bits)``.

    A distance measured on few bits is less certain, so it is pulled towards 0.5 (chance); one
    measured on more than ``reference_bits`` is pushed away. Source: J. Daugman, "How iris
    recognition works", IEEE Trans. CSVT 14(1):21-30, 2004, section 4. NaN stays NaN.
    """
    hd_a = np.asarray(hd, dtype=np.float64)
    n_a = np.asarray(n_bits, dtype=np.float64)
    if reference_bits <= 0:
        raise ValueError(f"reference_bits must be positive, got {reference_bits}")
    return 0.5 - (0.5 - hd_a) * np.sqrt(n_a / float(reference_bits))


def hamming_distance_packed(
    codes_a: WordArray,
    masks_a: WordArray,
    codes_b: WordArray,
    masks_b: WordArray,
    geometry: IrisGeometry,
    max_shift: int = DEFAULT_MAX_SHIFT_COLUMNS,
    min_valid_bits: int = DEFAULT_MIN_VALID_BITS,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Batched 1:1 distance on codes already packed with ``groups=1``: arrays of shape ``(n, W)``.

    Returns ``(hd, shift, n_bits)`` arrays of length n; ``hd`` is NaN where no rotation has
    ``min_valid_bits`` in common (``n_bits`` is then the best overlap seen). Thread-safe; releases
    the GIL; runs on all numba threads.
    """
    from matcher.kernels import cpu

    shift_order(max_shift)
    if max_shift >= geometry.columns:
        raise InvalidTemplate(f"max_shift {max_shift} must be below the {geometry.columns} columns")
    w = geometry.words(1)
    arrays = []
    for name, arr in (
        ("codes_a", codes_a),
        ("masks_a", masks_a),
        ("codes_b", codes_b),
        ("masks_b", masks_b),
    ):
        if (
            not isinstance(arr, np.ndarray)
            or arr.dtype != np.uint64
            or arr.ndim != 2
            or arr.shape[1] != w
        ):
            got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise InvalidTemplate(f"{name} must be uint64 of shape (n, {w}), got {got}")
        arrays.append(np.ascontiguousarray(arr))
    if len({a.shape[0] for a in arrays}) != 1:
        raise InvalidTemplate(f"batch sizes differ: {[a.shape[0] for a in arrays]}")
    return cpu.iris_pairs(
        arrays[0],
        arrays[1],
        arrays[2],
        arrays[3],
        geometry.column_stride_bits,
        int(max_shift),
        int(min_valid_bits),
    )


def hamming_distance(
    code_a: BoolArray,
    mask_a: BoolArray,
    code_b: BoolArray,
    mask_b: BoolArray,
    max_shift: int = DEFAULT_MAX_SHIFT_COLUMNS,
    *,
    min_valid_bits: int = DEFAULT_MIN_VALID_BITS,
) -> (
    tuple[float, int, int]
    | tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int32]]
):
    """Masked fractional Hamming distance, minimum over rotations of ``a`` by +-``max_shift``.

    ``code_*``/``mask_*``: bool arrays of shape ``(rings, columns, bits)``, or ``(n, rings, columns,
    bits)`` for a batch (a single ``a`` or ``b`` is broadcast against a batch). Returns
    ``(hd, shift, n_bits)``: the raw fractional HD (0 identical, about 0.5 for unrelated
    eyes, before :func:`normalize_hd`), the rotation ``s`` with ``np.roll(code_a, s, axis=1)``
    best aligned to ``code_b``, and the number of bits compared there. Python scalars for one
    pair, arrays for a batch. ``hd`` is NaN when no rotation leaves ``min_valid_bits`` bits in
    common.

    Raises :class:`~matcher.errors.InvalidTemplate` (a ``ValueError``) for wrong dtypes or shapes,
    different geometries, or a mask with fewer than ``min_valid_bits`` valid bits.
    """
    arrays = [code_a, mask_a, code_b, mask_b]
    for arr in arrays:
        if not isinstance(arr, np.ndarray) or arr.ndim not in (3, 4):
            raise InvalidTemplate(
                "codes and masks must be numpy bool arrays of shape (rings, columns, bits) "
                "or (n, rings, columns, bits)"
            )
    geometry_a = IrisGeometry(*code_a.shape[-3:])
    geometry_b = IrisGeometry(*code_b.shape[-3:])
    if geometry_a != geometry_b:
        raise InvalidTemplate(
            f"geometries differ: a is {geometry_a.shape}, b is {geometry_b.shape}"
        )
    single = all(a.ndim == 3 for a in arrays)
    a = validate_code_mask(
        code_a if code_a.ndim == 4 else code_a[None],
        mask_a if mask_a.ndim == 4 else mask_a[None],
        geometry_a,
        min_valid_bits,
        batch=True,
        what="a",
    )
    b = validate_code_mask(
        code_b if code_b.ndim == 4 else code_b[None],
        mask_b if mask_b.ndim == 4 else mask_b[None],
        geometry_b,
        min_valid_bits,
        batch=True,
        what="b",
    )
    na, nb = a[0].shape[0], b[0].shape[0]
    if na != nb and 1 not in (na, nb):
        raise InvalidTemplate(f"batch sizes differ: a has {na}, b has {nb}")
    n = max(na, nb)
    packed = [pack_codes(x, geometry_a) for x in (*a, *b)]
    packed = [np.ascontiguousarray(np.broadcast_to(p, (n, p.shape[1]))) for p in packed]
    hd, shift, bits = hamming_distance_packed(
        packed[0], packed[1], packed[2], packed[3], geometry_a, max_shift, min_valid_bits
    )
    if single:
        return float(hd[0]), int(shift[0]), int(bits[0])
    return hd, shift, bits
