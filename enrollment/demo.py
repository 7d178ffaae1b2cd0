"""Inputs for ``make demo``: one synthetic household of five through the card round.

    python -m enrollment.demo DIR

writes into DIR:

- ``tokens.json``: the server's token file (SHA-256 digests) for one user of each role, whose
  plain tokens are in ``demo.env`` (a throw-away loopback server only; never use them elsewhere);
- ``demo.env``: shell assignments the demo script sources: the tokens, the round (Jalali year,
  first and last day, Jalali) and the household's code;
- ``households.csv``: the household in ``python -m enrollment import`` columns;
- ``details.csv``: the members' addresses, occupations and phones;
- ``captures/<person_id>/``: ten fingers as ISO/IEC 19794-2:2011 records (``finger_<pos>.iso``,
  synthetic minutiae from :func:`matcher.synthetic.finger.finger_chunks`), both irises as codes
  with masks (``iris_L.npz``, ``iris_R.npz``, from :mod:`matcher.synthetic.iris`) and a photo
  (``photo.jpg``, a plain grey picture: nothing checks faces).

Thresholds: the server's shipped calibration (real images) was checked against these synthetic
templates (genuine probes verify, impostors and other members stay below the 1:N threshold), so
the demo runs with the shipped ``matcher/thresholds.json``.

The round opens today (the office's local day) for two weeks, in today's Jalali year; the members'
current cards expire after it opens, so all five are eligible.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import io
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from enrollment.__main__ import DETAIL_COLUMNS, IMPORT_COLUMNS  # the CLI's own CSV columns
from enrollment.calendar import jalali_year_of, to_jalali
from enrollment.reports import OFFICE_TZ
from matcher.auth import digest
from matcher.formats import iso19794_2
from matcher.iris import IrisGeometry
from matcher.synthetic.finger import finger_chunks
from matcher.synthetic.iris import random_codes, random_masks

SEED = 1403
HOUSEHOLD = "QOM-HH-0001"
OFFICE = "QOM-1"
ROUND_DAYS = 14
ROLES = ("admin", "caseworker", "unit_officer", "approver", "station")
MEMBERS = (
    # person id, given name, relation, sex, document kind
    ("QOM-P-0001", "Abdullah", "head", "M", "amayesh_card"),
    ("QOM-P-0002", "Fatima", "spouse", "F", "amayesh_card"),
    ("QOM-P-0003", "Ali", "child", "M", "amayesh_card"),
    ("QOM-P-0004", "Zahra", "child", "F", "travel_permit"),
    ("QOM-P-0005", "Hassan", "child", "M", "amayesh_card"),
)


def jalali(day: dt.date) -> str:
    j = to_jalali(day)
    return f"{j.year:04d}/{j.month:02d}/{j.day:02d}"


def write(folder: Path, today: dt.date) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tokens = {role: f"demo-{role}-{secrets.token_hex(8)}" for role in ROLES}
    doc = {
        "tokens": [
            {"name": f"demo-{role}", "role": role, "sha256": digest(t).hex()}
            for role, t in tokens.items()
        ]
    }
    (folder / "tokens.json").write_text(json.dumps(doc, indent=1) + "\n")

    first, last = today, today + dt.timedelta(days=ROUND_DAYS - 1)
    env = {f"{role.upper()}_TOKEN": t for role, t in tokens.items()}
    env.update(
        YEAR=str(jalali_year_of(first)),
        FIRST=jalali(first),
        LAST=jalali(last),
        HOUSEHOLD=HOUSEHOLD,
        OFFICE=OFFICE,
    )
    (folder / "demo.env").write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))

    expiry = jalali(first + dt.timedelta(days=45))
    with (folder / "households.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(IMPORT_COLUMNS)
        for k, (pid, given, relation, sex, kind) in enumerate(MEMBERS):
            father = "Karim" if relation in ("head", "spouse") else MEMBERS[0][1]
            number = f"{'C' if kind == 'amayesh_card' else 'TP'}-{9100 + k}"
            born = f"{1360 + 8 * k if k < 2 else 1385 + 3 * k}/0{k + 1}/1{k}"
            w.writerow(
                [HOUSEHOLD, MEMBERS[0][0], "0912 345 6789", OFFICE, pid, given, "Ahmadi"]
                + [father, sex, relation, kind, number, expiry, born, "no"]
            )
    with (folder / "details.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(DETAIL_COLUMNS)
        jobs = ("tailor", "homemaker", "student", "student", "student")
        for (pid, *_), job in zip(MEMBERS, jobs, strict=True):
            w.writerow([pid, "قم، پردیسان، بلوک ۴", job, "09123456789", "02537001122", "W-77"])

    n = len(MEMBERS)
    fingers = next(finger_chunks(10 * n, seed=SEED, chunk=10 * n))
    rng = np.random.default_rng(SEED)
    geo = IrisGeometry()
    codes, masks = random_codes(2 * n, geo, rng), random_masks(2 * n, geo, rng)
    photo = io.BytesIO()
    Image.new("L", (120, 160), 128).save(photo, "JPEG")
    for k, (pid, *_) in enumerate(MEMBERS):
        d = folder / "captures" / pid
        d.mkdir(parents=True, exist_ok=True)
        for pos in range(1, 11):
            t = dataclasses.replace(fingers[10 * k + pos - 1], position=pos)
            (d / f"finger_{pos}.iso").write_bytes(iso19794_2.encode([t], "2011"))
        for j, eye in enumerate("LR"):
            np.savez(d / f"iris_{eye}.npz", code=codes[2 * k + j], mask=masks[2 * k + j])
        (d / "photo.jpg").write_bytes(photo.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m enrollment.demo", description=__doc__.split("\n")[0]
    )
    p.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    write(args.folder, dt.datetime.now(OFFICE_TZ).date())
    print(f"demo inputs written to {args.folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
