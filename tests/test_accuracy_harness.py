"""The accuracy harness on a few real images: pair protocol, FTE accounting, CSV and plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.datasets import all_pairs, fvc_samples, iitd_samples

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "accuracy", *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.realdata
def test_fingerprint_harness(shared_data_dir: Path, tmp_path: Path) -> None:
    src = shared_data_dir / "fingerprint" / "fvc2002_db1_b"
    data = tmp_path / "fvc"
    data.mkdir()
    for f in (101, 102, 103):
        for i in (1, 2, 3):
            (data / f"{f}_{i}.tif").symlink_to(src / f"{f}_{i}.tif")
    (data / "104_1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # refused: counts in FTE
    (data / "notes.txt").write_text("ignored: not FVC naming")
    samples = fvc_samples(data)
    assert len(samples) == 10 and len(all_pairs(samples)) == 45
    scores_csv = tmp_path / "scores.csv"
    r = _run(
        [
            "fingerprint",
            "--data",
            str(data),
            "--no-peer",
            "--scores",
            str(scores_csv),
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    assert (r["genuine"], r["impostor"]) == (9, 36)  # 3 fingers x C(3,2); the rest
    assert r["fte"] == pytest.approx(0.1) and list(r["refused"]) == ["104_1"]
    assert set(r["fnmr_at_fmr"]) == {"0.01", "0.001", "0.0001"}
    assert r["fnmr_at_fmr"]["0.001"] is None  # 36 impostors cannot resolve 1e-3
    assert r["extract_ms"] > 0 and r["matches_per_s"] > 0
    rows = list(csv.DictReader(scores_csv.open()))
    assert len(rows) == 45 and set(rows[0]) == {"probe", "reference", "genuine", "score"}
    refused = [float(x["score"]) for x in rows if "104_1" in (x["probe"], x["reference"])]
    real = [float(x["score"]) for x in rows if "104_1" not in (x["probe"], x["reference"])]
    assert len(refused) == 9 and max(refused) < min(real)
    genuine = [float(x["score"]) for x in rows if x["genuine"] == "1"]
    impostor = [
        float(x["score"])
        for x in rows
        if x["genuine"] == "0" and "104_1" not in (x["probe"], x["reference"])
    ]
    assert sorted(genuine)[len(genuine) // 2] > sorted(impostor)[len(impostor) // 2]
    assert all(Path(p).is_file() for p in r["plots"])


@pytest.mark.realdata
def test_iris_harness(shared_data_dir: Path, tmp_path: Path) -> None:
    src = shared_data_dir / "iris" / "iitd"
    data = tmp_path / "iitd"
    for subject in ("001", "002", "003"):
        (data / subject).mkdir(parents=True)
        for p in sorted((src / subject).glob("*.png"))[:3]:
            (data / subject / p.name).symlink_to(p)
    samples = iitd_samples(data)
    pairs = all_pairs(samples)
    identities = {s.identity for s in samples}
    assert len(samples) == 9 and all(i[:3] in ("001", "002", "003") for i in identities)
    r = _run(["iris", "--data", str(data)])
    assert r["genuine"] == int(pairs.genuine.sum()) and r["identities"] == len(identities)
    assert r["genuine"] + r["impostor"] == len(pairs)
    assert r["eer"] is not None and 0 <= r["eer"] <= 0.5
