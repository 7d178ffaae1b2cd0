"""Samples as stations send them: records and code pairs become the templates galleries take."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.errors import InvalidImage, InvalidTemplate
from matcher.formats import ansi378, iso19794_2
from matcher.iris import IrisGeometry, IrisTemplate
from matcher.samples import finger_template, iris_template
from matcher.templates import FingerTemplate


def _finger(position: int, shift: float = 0.0) -> FingerTemplate:
    return FingerTemplate(
        x=[100 + shift, 150, 210, 120],
        y=[120, 180, 140, 230],
        theta=[0.3, 1.2, 2.8, 4.0],
        width=400,
        height=420,
        dpi=500,
        position=position,
    )


def test_template_passes_through() -> None:
    t = _finger(2)
    assert finger_template(t) is t


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: iso19794_2.encode(v, "2005"),
        lambda v: iso19794_2.encode(v, "2011"),
        ansi378.encode,
    ],
)
def test_records_of_every_format_decode_and_pick_the_position(encode) -> None:  # type: ignore[no-untyped-def]
    views = [_finger(2), _finger(7, shift=40.0)]
    record = encode(views)
    got = finger_template(record, position=7)
    assert got.position == 7 and abs(float(got.x[0]) - 140.0) < 1.0
    assert abs(float(finger_template(record, position=2).x[0]) - 100.0) < 1.0
    assert finger_template(record).position == 2  # position unknown: the first view
    with pytest.raises(InvalidTemplate, match=r"holds finger positions \[2, 7\], not 5"):
        finger_template(record, position=5)
    # A record with one view is that finger whatever position the caller names.
    assert finger_template(encode([views[0]]), position=9).position == 2


def test_damaged_record_and_garbage_are_refused() -> None:
    record = iso19794_2.encode([_finger(1)])
    with pytest.raises(InvalidTemplate):
        finger_template(record[: len(record) // 2])
    with pytest.raises(InvalidImage, match="not an image"):
        finger_template(b"neither a record nor an image")
    with pytest.raises(InvalidImage, match="empty"):
        finger_template(b"")


def _code_pair(geo: IrisGeometry) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.random(geo.shape) < 0.5, np.ones(geo.shape, bool)


def test_iris_code_pairs_and_templates() -> None:
    geo = IrisGeometry()
    code, mask = _code_pair(geo)
    t = iris_template((code, mask), eye="R")
    assert t.eye == "R" and np.array_equal(t.code, code)
    again = iris_template(IrisTemplate(code, mask, "L"), eye="R")
    assert again.eye == "R"


def test_iris_bad_samples_are_refused() -> None:
    geo = IrisGeometry()
    code, mask = _code_pair(geo)
    with pytest.raises(InvalidTemplate, match="eye"):
        iris_template((code, mask), eye="X")
    with pytest.raises(InvalidTemplate, match="bool"):
        iris_template((code.astype(np.uint8), mask), eye="L")
    with pytest.raises(InvalidTemplate, match="shape"):
        iris_template((code, mask), eye="L", geometry=IrisGeometry(rings=16))
    with pytest.raises(InvalidTemplate):
        iris_template((code, np.zeros_like(mask)), eye="L")  # no valid bits
    with pytest.raises(InvalidTemplate, match="pair"):
        iris_template((code, mask, mask), eye="L")  # type: ignore[arg-type]
    with pytest.raises(InvalidImage):
        iris_template(b"\x89PNG\r\n\x1a\n-truncated", eye="L")
