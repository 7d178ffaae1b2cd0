"""IrisGallery under concurrent use: searches from several threads while others add and remove,
as gRPC worker threads will do; plus the packed bulk-add path a store uses at start-up."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from matcher.errors import DuplicateId, InvalidTemplate
from matcher.gallery import IrisGallery
from matcher.iris import IrisGeometry
from matcher.synthetic.iris import genuine_probes, random_codes, random_masks

GEO = IrisGeometry()


def test_searches_stay_correct_while_the_gallery_changes() -> None:
    rng = np.random.default_rng(70)
    codes, masks = random_codes(1200, GEO, rng), random_masks(1200, GEO, rng)
    probes = genuine_probes(codes[:8], rng)
    g = IrisGallery(GEO, 8)
    g.add(np.arange(600), codes[:600], masks[:600])
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher(i: int) -> None:
        try:
            while not stop.is_set():
                hd, ids, _ = g.search(probes.codes[i], probes.masks[i], k=3, exact=bool(i % 2))
                # The mate (enrolled first and never removed) is always found and ranked first.
                assert ids[0] == i and hd[0] < 0.35
                assert np.all(np.diff(hd[np.isfinite(hd)]) >= 0)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread and re-raised
            errors.append(exc)

    def mutator() -> None:
        try:
            for start in range(600, 1200, 100):
                g.add(
                    np.arange(start, start + 100),
                    codes[start : start + 100],
                    masks[start : start + 100],
                )
                g.remove(np.arange(start, start + 50))
            g.compact()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    m = threading.Thread(target=mutator)
    m.start()
    m.join(timeout=120)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert len(g) == 600 + 6 * 50
    assert not any(i in g for i in range(600, 650))


def test_add_packed_round_trips_and_refuses_bad_input() -> None:
    rng = np.random.default_rng(71)
    codes, masks = random_codes(100, GEO, rng), random_masks(100, GEO, rng)
    a = IrisGallery(GEO, 8)
    a.add(np.arange(100), codes, masks)
    pc, pm = a.packed(np.arange(100))
    b = IrisGallery(GEO, 8)
    b.add_packed(np.arange(100), pc, pm)
    probe = genuine_probes(codes[5:6], rng)
    for exact in (True, False):
        ra = a.search(probe.codes[0], probe.masks[0], k=5, exact=exact)
        rb = b.search(probe.codes[0], probe.masks[0], k=5, exact=exact)
        assert all(np.array_equal(x, y) for x, y in zip(ra, rb, strict=True))
    with pytest.raises(InvalidTemplate, match="shape"):
        b.add_packed([200], pc[:1, :-1], pm[:1, :-1])
    with pytest.raises(InvalidTemplate, match="valid bits"):
        b.add_packed([200], pc[:1], np.zeros_like(pm[:1]))
    with pytest.raises(DuplicateId):
        b.add_packed([5], pc[:1], pm[:1])
    odd = IrisGallery(IrisGeometry(3, 64, 1), 4, min_valid_bits=8)  # 3 bits padded to 4 per column
    full = np.full((1, odd.words), np.iinfo(np.uint64).max, np.uint64)
    with pytest.raises(InvalidTemplate, match="padding"):
        odd.add_packed([1], full, full)
    assert len(b) == 100 and len(odd) == 0
