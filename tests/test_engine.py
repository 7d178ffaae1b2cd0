"""The engine over a real SQLite store: decisions, writes in commit order, restart equality."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from matcher.crypto import generate_key_file, load_key
from matcher.engine import Engine
from matcher.errors import DuplicateId, InvalidTemplate, NothingToCompare, UnknownId
from matcher.finger import match
from matcher.iris import IrisGeometry, IrisTemplate, hamming_distance, normalize_hd
from matcher.store import Actor, Biometrics, Store
from matcher.synthetic.finger import finger_chunks
from matcher.synthetic.iris import genuine_probes, random_codes, random_masks
from matcher.thresholds import Calibration, Thresholds

PERSONS = 12
GEO = IrisGeometry()
ACTOR = Actor("test-station", "station")


class World:
    """Synthetic persons: 3 fingers (positions 1, 2, 7) and two eyes each, plus new captures."""

    def __init__(self) -> None:
        enrolled = next(finger_chunks(PERSONS * 10, seed=21, chunk=PERSONS * 10, take=0))
        again = next(finger_chunks(PERSONS * 10, seed=21, chunk=PERSONS * 10, take=1))
        self.positions = (1, 2, 7)
        self.fingers = [
            {p: dataclasses.replace(enrolled[10 * k + p - 1], position=p) for p in self.positions}
            for k in range(PERSONS)
        ]
        self.finger_probes = [
            {p: dataclasses.replace(again[10 * k + p - 1], position=p) for p in self.positions}
            for k in range(PERSONS)
        ]
        rng = np.random.default_rng(5)
        codes = random_codes(2 * PERSONS, GEO, rng)
        masks = random_masks(2 * PERSONS, GEO, rng)
        probes = genuine_probes(codes, rng)
        self.irises = [
            {e: IrisTemplate(codes[2 * k + j], masks[2 * k + j], e) for j, e in enumerate("LR")}
            for k in range(PERSONS)
        ]
        self.iris_probes = [
            {
                e: IrisTemplate(probes.codes[2 * k + j], probes.masks[2 * k + j], e)
                for j, e in enumerate("LR")
            }
            for k in range(PERSONS)
        ]
        self.thresholds = self._calibrate(enrolled, rng)

    @staticmethod
    def _calibrate(enrolled: list, rng: np.random.Generator) -> Thresholds:
        """Thresholds measured on this synthetic population's own impostor scores."""
        fi = [
            match(enrolled[i], enrolled[j])
            for i in range(0, 60, 3)
            for j in range(1, 60, 7)
            if i != j
        ]
        codes = random_codes(60, GEO, rng)
        masks = random_masks(60, GEO, rng)
        ii = []
        for i in range(0, 60, 2):
            for j in range(1, 60, 6):
                hd, _, bits = hamming_distance(codes[i], masks[i], codes[j], masks[j], max_shift=8)
                ii.append(float(normalize_hd(hd, bits)))
        return Thresholds(
            Calibration.fit("finger", fi, True, "synthetic"),
            Calibration.fit("iris", ii, False, "synthetic"),
        )

    def bio(self, k: int, fingers: bool = True, irises: bool = True) -> Biometrics:
        return Biometrics(
            fingers=self.fingers[k] if fingers else {}, irises=self.irises[k] if irises else {}
        )


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _open(path: Path, world: World) -> Engine:
    key_file = path / "key"
    key = load_key(key_file) if key_file.exists() else generate_key_file(key_file)
    store = Store.open(f"sqlite:///{path / 'store.db'}", key)
    engine = Engine(store, world.thresholds)
    engine.load()
    return engine


@pytest.fixture
def engine(tmp_path: Path, world: World):  # type: ignore[no-untyped-def]
    e = _open(tmp_path, world)
    for k in range(PERSONS):
        e.enroll(f"P-{k}", world.bio(k, irises=k % 3 != 0), ACTOR, {"household": f"H{k // 4}"})
    yield e
    e.store.close()


def test_verify_genuine_and_impostor(engine: Engine, world: World) -> None:
    d = engine.verify("P-4", world.finger_probes[4], world.iris_probes[4])
    assert d.match and set(d.decided_by.split("+")) <= {"finger", "iris"}
    assert {"finger", "iris", "finger.1", "finger.2", "finger.7", "iris.L", "iris.R"} <= set(
        d.scores
    )
    assert d.fmr == world.thresholds.default_fmr
    wrong = engine.verify("P-5", world.finger_probes[4], world.iris_probes[4])
    assert not wrong.match and wrong.decided_by == "none"
    # Fingers alone decide for a person with no irises enrolled.
    only = engine.verify("P-3", world.finger_probes[3], {})
    assert only.match and only.decided_by == "finger"
    with pytest.raises(NothingToCompare):
        engine.verify("P-3", {}, world.iris_probes[3])  # P-3 has no iris enrolled
    with pytest.raises(UnknownId):
        engine.verify("P-999", world.finger_probes[3], {})
    with pytest.raises(InvalidTemplate):
        engine.verify("P-3", {}, {})


def test_identify_finds_the_person_first(engine: Engine, world: World) -> None:
    for k in (1, 6, 9):
        res = engine.identify(world.finger_probes[k], world.iris_probes[k])
        assert res.candidates and res.candidates[0].person_id == f"P-{k}"
        assert res.fpir == world.thresholds.default_fpir
    iris_only = engine.identify({}, {"L": world.iris_probes[5]["L"]})
    assert [c.person_id for c in iris_only.candidates][:1] == ["P-5"]
    assert iris_only.decided_by == "iris"
    restricted = engine.identify(world.finger_probes[7], {}, restrict_to=["P-1", "P-2"])
    assert all(c.person_id in ("P-1", "P-2") for c in restricted.candidates)
    assert "P-7" not in [c.person_id for c in restricted.candidates]
    with pytest.raises(UnknownId):
        engine.identify(world.finger_probes[7], {}, restrict_to=["nobody"])
    with pytest.raises(InvalidTemplate):
        engine.identify(world.finger_probes[7], {}, target_fpir=2.0)


def test_delete_and_update_reach_the_galleries(engine: Engine, world: World) -> None:
    engine.delete("P-2", ACTOR)
    with pytest.raises(UnknownId):
        engine.verify("P-2", world.finger_probes[2], {})
    assert "P-2" not in [
        c.person_id for c in engine.identify(world.finger_probes[2], {}).candidates
    ]
    with pytest.raises(UnknownId):
        engine.delete("P-2", ACTOR)
    # P-8's finger 7 becomes P-10's: a probe of P-10's finger 7 now matches P-8 on it.
    before = engine.store.info("P-8").version
    engine.update("P-8", Biometrics(fingers={7: world.fingers[10][7]}), ACTOR)
    d = engine.verify("P-8", {7: world.finger_probes[10][7]}, {})
    assert d.match and engine.store.info("P-8").version == before + 1
    assert engine.verify("P-8", {1: world.finger_probes[8][1]}, {}).match  # others kept


def test_refused_writes_change_nothing(engine: Engine, world: World) -> None:
    counts = engine.counts()
    with pytest.raises(DuplicateId):
        engine.enroll("P-1", world.bio(3), ACTOR)
    bad_eye = {"L": IrisTemplate(np.zeros((4, 128, 2), bool), np.ones((4, 128, 2), bool), "L")}
    with pytest.raises(InvalidTemplate):
        engine.enroll("P-new", Biometrics(fingers=world.fingers[0], irises=bad_eye), ACTOR)
    with pytest.raises(InvalidTemplate):
        engine.enroll("P-new", Biometrics(), ACTOR)
    assert engine.counts() == counts
    with pytest.raises(UnknownId):
        engine.store.info("P-new")


def test_restart_galleries_equal_the_store(tmp_path: Path, world: World) -> None:
    e = _open(tmp_path, world)
    for k in range(PERSONS):
        e.enroll(f"P-{k}", world.bio(k, fingers=k % 4 != 1), ACTOR)
    e.delete("P-6", ACTOR)
    answers = [e.identify(world.finger_probes[k], world.iris_probes[k]) for k in range(PERSONS)]
    counts = e.counts()
    e.store.close()
    again = _open(tmp_path, world)
    assert (
        again.counts()
        == counts
        == {
            "persons": PERSONS - 1,
            "fingers": 3 * (PERSONS - 3 - 1),  # P-1, P-5, P-9 have no fingers; P-6 is gone
            "irises": 2 * (PERSONS - 1),
        }
    )
    for k in range(PERSONS):
        got = again.identify(world.finger_probes[k], world.iris_probes[k])
        assert [(c.person_id, c.scores) for c in got.candidates] == [
            (c.person_id, c.scores) for c in answers[k].candidates
        ]
    again.store.close()


def test_screened_shortlist_answers_as_the_exact_one(
    engine: Engine, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large galleries short-list irises with the screened search; on these probes it must
    give the same candidates, with the same (exact) scores."""
    import matcher.engine

    def answers() -> list[list[tuple[str, dict[str, float]]]]:
        return [
            [(c.person_id, c.scores) for c in engine.identify({}, world.iris_probes[k]).candidates]
            for k in range(PERSONS)
        ]

    exact = answers()
    monkeypatch.setattr(matcher.engine, "IRIS_SCREENED_FROM", 0)
    assert answers() == exact
    assert sum(bool(a) for a in exact) >= PERSONS - PERSONS // 3  # persons with irises found
