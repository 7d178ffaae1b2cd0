"""matcher.formats.xyt: NIST mindtct/bozorth3 text in both representations mindtct writes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.errors import InvalidTemplate
from matcher.formats import MAX_RECORD_BYTES, xyt
from matcher.templates import FingerTemplate

FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- known answers: one minutia pointing up the displayed image ----------------------------


def _check_up_minutia(t: FingerTemplate) -> None:
    """x=100, y=100 (top-left, y down), theta = 90 degrees, quality 55, in a 300x400 image."""
    assert (t.n, t.width, t.height, t.dpi) == (1, 300, 400, 500)
    assert (t.x[0], t.y[0]) == (100, 100)
    assert t.theta[0] == pytest.approx(math.pi / 2)
    np.testing.assert_allclose(t.directions()[0], (0.0, -1.0), atol=1e-6)
    assert t.quality[0] == 55 and t.kind[0] == 0


def test_mindtct_default_is_bottom_left_and_points_away_from_the_ridge() -> None:
    # NIST internal: y counted up from the bottom edge (400 - 100 = 300); the direction points
    # out and away from the ridge ending, 180 degrees from ISO: up (90) is written as 270.
    _check_up_minutia(xyt.decode("100 300 270 55\n", 300, 400))
    assert xyt.encode(xyt.decode("100 300 270 55\n", 300, 400)) == "100 300 270 55\n"


def test_mindtct_m1_is_top_left_in_two_degree_units() -> None:
    # lfs2m1_minutia_XYT: coordinates as in the image, ISO/ANSI direction, t = t / 2.
    t = xyt.decode("100 100 45 55\n", 300, 400, origin="top-left")
    _check_up_minutia(t)
    assert xyt.encode(t, origin="top-left") == "100 100 45 55\n"


def test_top_left_in_whole_degrees_needs_the_unit_override() -> None:
    t = xyt.decode("100 100 90 55", 300, 400, origin="top-left", angle_unit_deg=1)
    _check_up_minutia(t)
    assert xyt.encode(t, origin="top-left", angle_unit_deg=1) == "100 100 90 55\n"
    with pytest.raises(InvalidTemplate, match="line 1: theta = 270 is beyond one turn"):
        xyt.decode("100 100 270 55", 300, 400, origin="top-left")


def test_three_columns_blank_lines_crlf_and_negative_angles() -> None:
    text = "\r\n100 300 -90\r\n\n  5 1 0  \r\n"  # bozorth3 normalises to (-180, 180]
    t = xyt.decode(text.encode("ascii"), 300, 400, dpi=1000)
    assert t.dpi == 1000 and t.n == 2
    np.testing.assert_array_equal(t.x, [100, 5])
    np.testing.assert_array_equal(t.y, [100, 399])
    np.testing.assert_allclose(t.theta, [math.pi / 2, math.pi], atol=1e-6)
    np.testing.assert_array_equal(t.quality, [0, 0])  # no quality column: not reported


def test_y_at_the_edges_of_a_bottom_left_file() -> None:
    t = xyt.decode("0 400 0 1\n0 1 0 1\n", 300, 400)
    np.testing.assert_array_equal(t.y, [0, 399])


# --- round trips ---------------------------------------------------------------------------


def _random_template(seed: int) -> FingerTemplate:
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(1, 2000)), int(rng.integers(1, 2000))
    n = int(rng.integers(1, 256))
    edge_x = np.nextafter(np.float32(width), np.float32(0))
    edge_y = np.nextafter(np.float32(height), np.float32(0))
    return FingerTemplate(
        x=np.minimum(rng.uniform(0, width, n).astype(np.float32), edge_x),
        y=np.minimum(rng.uniform(0, height, n).astype(np.float32), edge_y),
        theta=rng.uniform(-7, 14, n),
        width=width,
        height=height,
        kind=rng.integers(0, 3, n),
        quality=rng.integers(0, 101, n),
        position=int(rng.integers(0, 11)),
    )


@FAST
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(
        [("bottom-left", None), ("top-left", None), ("top-left", 1), ("bottom-left", 2)]
    ),
)
def test_round_trip(seed: int, convention: tuple[str, int | None]) -> None:
    origin, unit = convention
    units = 360 // (unit or (1 if origin == "bottom-left" else 2))
    t = _random_template(seed)
    text = xyt.encode(t, origin, angle_unit_deg=unit)
    assert text.count("\n") == t.n
    back = xyt.decode(text, t.width, t.height, t.dpi, origin, angle_unit_deg=unit)
    codes = np.mod(np.rint(t.theta.astype(np.float64) * (units / (2 * np.pi))), units)
    want = FingerTemplate(  # whole pixels, the angle unit; no types or position in .xyt
        x=np.clip(np.rint(t.x.astype(np.float64)), 0, t.width - 1),
        y=np.clip(np.rint(t.y.astype(np.float64)), 0, t.height - 1),
        theta=(codes * (2 * np.pi / units)).astype(np.float32),
        width=t.width,
        height=t.height,
        quality=t.quality,
    )
    assert back.equals(want)
    assert xyt.encode(back, origin, angle_unit_deg=unit) == text


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, "no minutiae"),
        ("\n \n", {}, "no minutiae"),
        ("1 2 3 4\n5 6 7\n", {}, "line 2 has 3 columns but earlier lines have 4"),
        ("1 2\n", {}, "line 1: expected 'x y theta \\[quality\\]'"),
        ("1 2 3 4 5\n", {}, "line 1: expected"),
        ("1 2.5 3 4\n", {}, "line 1: expected"),
        ("1 2 3 4\nx y z q\n", {}, "line 2: expected"),
        ("1 2 3 1_0\n", {}, "line 1: expected"),
        ("1" * 5000 + " 2 3 4\n", {}, "line 1: expected"),  # int() refuses > 4300 digits
        ("300 2 3 4\n", {}, r"line 1: x = 300 is outside \[0, width=300\)"),
        ("-1 2 3 4\n", {}, "x = -1 is outside"),
        ("1 0 3 4\n", {}, r"y = 0 is outside \[1, height=400\] \(origin bottom-left\)"),
        ("1 401 3 4\n", {}, "y = 401 is outside"),
        ("1 400 3 4\n", {"origin": "top-left"}, r"y = 400 is outside \[0, height=400\)"),
        ("1 2 361 4\n", {}, "theta = 361 is beyond one turn"),
        ("1 2 181 4\n", {"origin": "top-left"}, "wrong origin or angle_unit_deg"),
        ("1 2 3 101\n", {}, "quality = 101 is outside 0..100"),
        ("1 2 3 -1\n", {}, "quality = -1"),
        ("1 2 3 4\n" * 256, {}, "line 256: more than 255 minutiae"),
        (b"1 2 3 4\n\xff", {}, "byte 8 is not ASCII"),
        ("1 2 3 4\n", {"width": 0}, "width = 0 is outside"),
        ("1 2 3 4\n", {"height": 16384}, "height = 16384 is outside"),
        ("1 2 3 4\n", {"width": 30.0}, "width must be an integer"),
        ("1 2 3 4\n", {"dpi": 10}, "dpi must be in"),
        (12345, {}, "expected str or bytes, got int"),
    ],
)
def test_malformed_text_is_refused_with_the_line(text, kwargs: dict, message: str) -> None:
    args = {"width": 300, "height": 400, **kwargs}
    with pytest.raises(InvalidTemplate, match=message):
        xyt.decode(text, **args)


def test_255_lines_are_fine_and_the_size_cap_holds() -> None:
    assert xyt.decode("1 2 3 4\n" * 255, 300, 400).n == 255
    with pytest.raises(InvalidTemplate, match="1 MiB"):
        xyt.decode(" " * (MAX_RECORD_BYTES + 1), 300, 400)


def test_unknown_conventions_are_programming_errors() -> None:
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9)
    with pytest.raises(ValueError, match="origin"):
        xyt.decode("1 1 1 1", 9, 9, origin="bottom-right")
    with pytest.raises(ValueError, match="angle_unit_deg"):
        xyt.encode(t, angle_unit_deg=3)
    with pytest.raises(ValueError, match="origin"):
        xyt.encode(t, origin="m1")
    with pytest.raises(InvalidTemplate, match="expected a FingerTemplate"):
        xyt.encode("1 1 1 1")  # type: ignore[arg-type]


@FAST
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)), st.sampled_from(xyt.ORIGINS))
def test_random_text_is_refused_or_decoded(text: str | bytes, origin: str) -> None:
    try:
        t = xyt.decode(text, 50, 50, origin=origin)
    except InvalidTemplate:
        return
    assert isinstance(t, FingerTemplate) and t.n >= 1


@FAST
@given(
    st.lists(
        st.tuples(*[st.integers(-500, 500)] * 4).map(lambda r: " ".join(map(str, r))),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(xyt.ORIGINS),
)
def test_random_integer_lines_are_refused_or_decoded(lines: list[str], origin: str) -> None:
    try:
        t = xyt.decode("\n".join(lines), 300, 300, origin=origin)
    except InvalidTemplate:
        return
    assert t.n == len(lines)
