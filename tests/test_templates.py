"""matcher.templates.FingerTemplate: conversion, validation, the angle convention, with_dpi."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.errors import InvalidTemplate
from matcher.templates import (
    FINGER_TEMPLATE_VERSION,
    KIND_BIFURCATION,
    KIND_OTHER,
    KIND_RIDGE_ENDING,
    MAX_IMAGE_SIDE_PX,
    MAX_MINUTIAE,
    QUALITY_NOT_REPORTED,
    FingerTemplate,
)

FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _template(**overrides: object) -> FingerTemplate:
    fields: dict[str, object] = dict(
        x=[10.0, 20.5, 299.0],
        y=[5.0, 100.25, 399.5],
        theta=[0.0, 1.0, 2.0],
        width=300,
        height=400,
    )
    fields.update(overrides)
    return FingerTemplate(**fields)  # type: ignore[arg-type]


# --- construction --------------------------------------------------------------------------


def test_converts_array_likes_to_documented_dtypes() -> None:
    t = _template(x=[1, 2, 3], kind=[0, 1, 2], quality=[0.0, 50.0, 100.0])
    assert t.x.dtype == np.float32 and t.y.dtype == np.float32 and t.theta.dtype == np.float32
    assert t.kind.dtype == np.uint8 and t.quality.dtype == np.uint8
    assert t.x.shape == t.y.shape == t.theta.shape == t.kind.shape == t.quality.shape == (3,)
    assert t.n == 3
    assert isinstance(t.width, int) and isinstance(t.dpi, int)


def test_defaults() -> None:
    t = _template()
    assert t.dpi == 500
    assert t.position == 0 and t.impression == 0
    assert t.format_version == FINGER_TEMPLATE_VERSION == 1
    assert np.all(t.kind == KIND_OTHER)
    assert np.all(t.quality == QUALITY_NOT_REPORTED)
    assert (KIND_OTHER, KIND_RIDGE_ENDING, KIND_BIFURCATION) == (0, 1, 2)  # ISO 00/01/10


def test_copies_inputs_and_is_read_only() -> None:
    x = np.array([10.0, 20.0, 30.0])
    t = _template(x=x)
    x[0] = 99.0
    assert t.x[0] == 10.0
    with pytest.raises(ValueError):
        t.x[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.width = 5  # type: ignore[misc]


def test_numpy_integer_scalars_are_accepted() -> None:
    t = _template(width=np.int32(300), height=np.uint16(400), dpi=np.int64(1000))
    assert (t.width, t.height, t.dpi) == (300, 400, 1000)
    assert type(t.width) is int


def test_theta_is_wrapped_into_zero_two_pi() -> None:
    two_pi = 2 * math.pi
    t = _template(theta=[-math.pi / 2, two_pi, 3 * math.pi])
    np.testing.assert_allclose(t.theta, [3 * math.pi / 2, 0.0, math.pi], atol=1e-6)
    # Just below 2*pi rounds to float32(2*pi) > 2*pi: it must come out as 0, not 2*pi.
    t = _template(theta=[two_pi - 1e-9, -1e-12, 0.0])
    assert np.all(t.theta >= 0) and np.all(t.theta < np.float32(two_pi))
    np.testing.assert_array_equal(t.theta, [0.0, 0.0, 0.0])


@FAST
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=20))
def test_wrapping_keeps_every_direction(angles: list[float]) -> None:
    n = len(angles)
    t = FingerTemplate(x=np.zeros(n), y=np.zeros(n), theta=angles, width=1, height=1)
    assert np.all(t.theta >= 0) and np.all(t.theta < np.float32(2 * math.pi))
    a = np.asarray(angles)
    np.testing.assert_allclose(np.cos(t.theta), np.cos(a), atol=2e-3)
    np.testing.assert_allclose(np.sin(t.theta), np.sin(a), atol=2e-3)


def test_limits_are_inclusive() -> None:
    n = MAX_MINUTIAE
    t = FingerTemplate(
        x=np.full(n, MAX_IMAGE_SIDE_PX - 1),
        y=np.zeros(n),
        theta=np.zeros(n),
        width=MAX_IMAGE_SIDE_PX,
        height=1,
        dpi=50,
        position=10,
        impression=255,
    )
    assert t.n == 255
    FingerTemplate(x=[0], y=[0], theta=[0], width=1, height=1, dpi=20000)


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(x=[], y=[], theta=[]), "no minutiae"),
        (dict(x=np.zeros(256), y=np.zeros(256), theta=np.zeros(256)), "256 minutiae"),
        (dict(x=[1.0, np.nan, 3.0]), r"x\[1\] is nan"),
        (dict(y=[1.0, 2.0, np.inf]), r"y\[2\] is inf"),
        (dict(theta=[0.0, -np.inf, 0.0]), r"theta\[1\] is -inf"),
        (dict(y=[1.0, 2.0]), "y has 2 entries but x has 3"),
        (dict(theta=[0.0]), "theta has 1 entries"),
        (dict(kind=[0, 1]), "kind has 2 entries"),
        (dict(quality=[0, 1, 2, 3]), "quality has 4 entries"),
        (dict(x=[[1.0, 2.0, 3.0]]), r"x must be 1-D"),
        (dict(x=["a", "b", "c"]), "x must hold real numbers"),
        (dict(x=[True, False, True]), "x must hold real numbers"),
        (dict(x=[[1.0], [2.0, 3.0]]), "x is not an array of numbers"),
        (dict(x=[10.0, 300.0, 1.0]), r"x\[1\] = 300.0 is outside \[0, width=300\)"),
        (dict(x=[-0.5, 1.0, 1.0]), r"x\[0\] = -0.5 is outside"),
        (dict(y=[1.0, 1.0, 400.0]), r"y\[2\] = 400.0 is outside \[0, height=400\)"),
        (dict(width=0), "width must be in"),
        (dict(width=16384), "width must be in"),
        (dict(height=-1), "height must be in"),
        (dict(width=300.0), "width must be an integer"),
        (dict(dpi=0), "dpi must be in"),
        (dict(dpi=49), "dpi must be in"),
        (dict(dpi=True), "dpi must be an integer"),
        (dict(kind=[0, 3, 1]), r"kind\[1\] = 3 is not 0 \(other\)"),
        (dict(kind=[0, 1.5, 1]), r"kind\[1\] = 1.5 is not an integer"),
        (dict(quality=[0, 101, 1]), r"quality\[1\] = 101 is not in 0..100"),
        (dict(quality=[-1, 1, 1]), r"quality\[0\] = -1"),
        (dict(position=11), "position must be in"),
        (dict(position=-1), "position must be in"),
        (dict(impression=256), "impression must be in"),
        (dict(format_version=2), "format_version must be in"),
    ],
)
def test_invalid_fields_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(InvalidTemplate, match=message):
        _template(**overrides)


def test_invalid_template_is_a_value_error() -> None:
    assert issubclass(InvalidTemplate, ValueError)


def test_coordinates_are_checked_after_float32_conversion() -> None:
    # 299.99999999 is below 300 in float64 but rounds to 300.0 in float32.
    with pytest.raises(InvalidTemplate, match="x"):
        _template(x=[1.0, 2.0, 299.99999999])


# --- the angle convention ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("theta", "direction"),
    [
        (0.0, (1.0, 0.0)),  # right
        (math.pi / 2, (0.0, -1.0)),  # up on the displayed image: towards smaller y
        (math.pi, (-1.0, 0.0)),  # left
        (3 * math.pi / 2, (0.0, 1.0)),  # down: towards larger y
        (math.pi / 4, (math.sqrt(0.5), -math.sqrt(0.5))),  # up and to the right
    ],
)
def test_directions_follow_the_iso_display_convention(
    theta: float, direction: tuple[float, float]
) -> None:
    t = FingerTemplate(x=[50], y=[50], theta=[theta], width=100, height=100)
    d = t.directions()
    assert d.shape == (1, 2) and d.dtype == np.float32
    np.testing.assert_allclose(d[0], direction, atol=1e-6)


def test_a_step_along_the_direction_moves_up_the_display() -> None:
    t = FingerTemplate(x=[50], y=[50], theta=[math.pi / 2], width=100, height=100)
    dx, dy = t.directions()[0]
    assert t.y[0] + 10 * dy < t.y[0]  # smaller y is higher on the displayed image
    assert abs(dx) < 1e-6


# --- equality ------------------------------------------------------------------------------


def test_equals() -> None:
    a = _template(kind=[1, 2, 0], quality=[10, 20, 30])
    b = _template(kind=[1, 2, 0], quality=[10, 20, 30])
    assert a.equals(b) and b.equals(a)
    assert a != b  # identity: arrays make == meaningless; equals() is the comparison
    assert a == a
    assert not a.equals(_template(kind=[1, 2, 1], quality=[10, 20, 30]))
    assert not a.equals(_template(kind=[1, 2, 0], quality=[10, 20, 31]))
    assert not a.equals(_template(kind=[1, 2, 0], quality=[10, 20, 30], position=1))
    assert not a.equals(_template(kind=[1, 2, 0], quality=[10, 20, 30], dpi=1000))
    assert not a.equals("not a template")
    shifted = _template(kind=[1, 2, 0], quality=[10, 20, 30], x=[10.001, 20.5, 299.0])
    assert not a.equals(shifted)
    assert a.equals(shifted, atol=0.01)


def test_equals_measures_theta_round_the_circle() -> None:
    a = FingerTemplate(x=[1], y=[1], theta=[0.0], width=5, height=5)
    b = FingerTemplate(x=[1], y=[1], theta=[2 * math.pi - 1e-4], width=5, height=5)
    assert not a.equals(b)
    assert a.equals(b, atol=1e-3)


def test_hash_is_identity() -> None:
    a = _template()
    assert len({a, a, _template()}) == 2


# --- with_dpi ------------------------------------------------------------------------------


def test_with_dpi_scales_coordinates_and_size() -> None:
    t = _template(kind=[1, 2, 0], quality=[5, 6, 7], position=4, impression=1)
    u = t.with_dpi(1000)
    assert (u.width, u.height, u.dpi) == (600, 800, 1000)
    np.testing.assert_allclose(u.x, t.x * 2)
    np.testing.assert_allclose(u.y, t.y * 2)
    np.testing.assert_array_equal(u.theta, t.theta)
    np.testing.assert_array_equal(u.kind, t.kind)
    np.testing.assert_array_equal(u.quality, t.quality)
    assert (u.position, u.impression) == (4, 1)
    assert u.with_dpi(500).equals(t)
    assert t.with_dpi(500) is t


@FAST
@given(
    st.integers(1, 3000),
    st.sampled_from([250, 300, 333, 500, 600, 1000, 1200]),
    st.sampled_from([250, 300, 333, 500, 600, 1000, 1200]),
)
def test_with_dpi_keeps_every_minutia_inside(side: int, dpi_from: int, dpi_to: int) -> None:
    edge = np.nextafter(np.float32(side), np.float32(0))
    t = FingerTemplate(
        x=[0.0, edge, side / 2],
        y=[edge, 0.0, side / 3],
        theta=[0, 1, 2],
        width=side,
        height=side,
        dpi=dpi_from,
    )
    u = t.with_dpi(dpi_to)  # would raise InvalidTemplate if a point fell outside
    assert u.width == math.ceil(side * dpi_to / dpi_from)
    assert u.dpi == dpi_to


def test_with_dpi_refuses_sizes_the_formats_cannot_hold() -> None:
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=10000, height=10, dpi=500)
    with pytest.raises(InvalidTemplate, match="width"):
        t.with_dpi(1000)
    with pytest.raises(InvalidTemplate, match="dpi"):
        t.with_dpi(10)


def test_repr_is_short() -> None:
    text = repr(_template())
    assert "n=3" in text and "300x400" in text and "500 dpi" in text
