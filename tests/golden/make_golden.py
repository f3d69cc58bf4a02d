"""Write tests/golden/default_model.json: the shipped default model's results on fixed images.

Run from anywhere as ``python tests/golden/make_golden.py`` (it needs the shared data folder:
``CHEXMASK_SHARED``, default ``../shared`` next to the repository, as in tests/conftest.py).

Rerunning this script is a deliberate decision to change the model's pinned results. The
golden test (tests/test_golden.py) fails whenever the landmarks, uncertainty or the columns
and values of ``chexmask segment --sample`` move. Rerun this script only when that move is
intended (a new default model, a new output column, a fix that changes the numbers), read the
diff of the JSON, and commit the JSON with the change that caused it, saying why in the
commit message (and in the changelog when users see different numbers).

What is pinned, for the bundled sample (what ``chexmask segment --sample`` reads), the JPEGs
of ``shared/data/samples`` and the first two ids of the JSRT val split:

- the 120 landmarks and the mean node uncertainty of ``Segmenter(uncertainty=50, seed=0)``
  (the default model, on the CPU);
- for the bundled sample, the CSV that ``chexmask segment --sample`` writes (CPU, run in
  process with typer's CliRunner): its exact column list and its Landmarks, Height, Width,
  CTR, Estimated Dice and Quality Flag values.

The test imports the functions below, so the test and this script compute the same things.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import resources
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "default_model.json"
#: Segmenter settings of the pinned landmarks (those of ``chexmask segment``'s defaults).
UNCERTAINTY = 50
SEED = 0
#: The CLI run, as a user types it; ``--device cpu`` so that the numbers are the same on a GPU
#: machine (CUDA runs float16 autocast), ``--workers 0`` and ``--no-progress`` change no result.
CLI_ARGS = ["segment", "--sample", "--device", "cpu", "--workers", "0", "--no-progress"]
#: The CSV columns whose values are pinned (every column's name is pinned).
CLI_VALUES = ["Landmarks", "Height", "Width", "CTR", "Estimated Dice Lungs", "Estimated Dice Heart", "Quality Flag"]
#: How many ids of the JSRT val split, and the shared sample JPEGs.
N_JSRT = 2


def shared_data() -> Path:
    """The shared ``data`` folder, located as tests/conftest.py does."""
    return Path(os.environ.get("CHEXMASK_SHARED", REPO.parent / "shared")) / "data"


def bundled_sample() -> Path:
    """The chest X-ray bundled with chexmask (what ``chexmask segment --sample`` adds)."""
    return Path(str(resources.files("chexmask") / "samples" / "00cfd1c1.jpg"))


def fixed_images(data: Path) -> dict[str, dict[str, str]]:
    """``{key: {"source": "bundled" | "shared", "path": ...}}``; shared paths are relative to ``data``."""
    images = {"bundled/00cfd1c1.jpg": {"source": "bundled", "path": "00cfd1c1.jpg"}}
    samples = sorted((data / "samples").glob("*.jpg"))
    ids = (data / "jsrt" / "splits" / "val.txt").read_text().split()[:N_JSRT]
    if len(samples) != 3 or len(ids) != N_JSRT:
        raise SystemExit(f"expected 3 JPEGs in {data / 'samples'} and {N_JSRT} JSRT val ids, found {len(samples)}, {len(ids)}")
    rels = [p.relative_to(data).as_posix() for p in samples] + [f"jsrt/images/{i}.png" for i in ids]
    images.update({f"shared/{rel}": {"source": "shared", "path": rel} for rel in rels})
    return images


def image_path(entry: dict[str, str], data: Path) -> Path:
    """The file of one :func:`fixed_images` entry."""
    return bundled_sample() if entry["source"] == "bundled" else data / entry["path"]


def make_segmenter():
    """The default model with the pinned settings."""
    from chexmask.inference.segmenter import Segmenter

    return Segmenter(uncertainty=UNCERTAINTY, seed=SEED)


def segment(segmenter, path: Path) -> dict:
    """What is pinned of one image: its size, 120 landmarks and mean node uncertainty."""
    result = segmenter.segment(path)
    return {"height": int(result.height), "width": int(result.width), "uncertainty": round(float(result.uncertainty), 4),
            "landmarks": np.round(result.landmarks, 3).tolist()}


def run_cli_sample(folder: Path) -> dict:
    """Run ``chexmask segment --sample -o folder/sample.csv`` in process; its columns and pinned values."""
    from typer.testing import CliRunner

    from chexmask.cli import app
    from chexmask.formats.landmarks import parse_landmarks
    from chexmask.formats.tables import read_table

    out = Path(folder) / "sample.csv"
    res = CliRunner().invoke(app, [*CLI_ARGS, "-o", str(out)])
    if res.exit_code != 0:
        raise RuntimeError(f"chexmask {' '.join(CLI_ARGS)} -o {out} exited {res.exit_code}:\n{res.output}") from res.exception
    table = read_table(out)
    if len(table) != 1:
        raise RuntimeError(f"{out} has {len(table)} rows, expected 1")
    row = table.iloc[0]
    return {"columns": [str(c) for c in table.columns],
            "values": {"Landmarks": parse_landmarks(row["Landmarks"], source=f"{out} row 1").tolist(),
                       "Height": int(row["Height"]), "Width": int(row["Width"]), "CTR": float(row["CTR"]),
                       "Estimated Dice Lungs": float(row["Estimated Dice Lungs"]),
                       "Estimated Dice Heart": float(row["Estimated Dice Heart"]), "Quality Flag": str(row["Quality Flag"])}}


def _dump(golden: dict) -> str:
    """JSON with one (x, y) point and one column name per line: a moved node or a new column is one line of the diff."""
    text = json.dumps(golden, indent=1)
    return re.sub(r"\[\s+(-?[\d.eE+-]+),\s+(-?[\d.eE+-]+)\s+\]", r"[\1, \2]", text) + "\n"


def main() -> int:
    import tempfile

    data = shared_data()
    if not data.is_dir():
        print(f"shared data not found at {data} (set CHEXMASK_SHARED to the shared/ folder)", file=sys.stderr)
        return 2
    seg = make_segmenter()
    images = fixed_images(data)
    for key, entry in images.items():
        entry.update(segment(seg, image_path(entry, data)))
        print(f"{key}: uncertainty {entry['uncertainty']:.4f} px", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        cli = run_cli_sample(Path(tmp))
    golden = {
        "about": "Written by tests/golden/make_golden.py; checked by tests/test_golden.py. Rerunning the script "
                 "is a deliberate decision to change the default model's pinned results.",
        "model": {"name": seg.info.get("name"), "sha256": seg.info["sha256"]},
        "settings": {"uncertainty": UNCERTAINTY, "seed": SEED, "device": "cpu", "backend": str(seg.backend)},
        "images": images,
        "cli_sample": {"args": CLI_ARGS, **cli},
    }
    GOLDEN.write_text(_dump(golden))
    print(f"wrote {GOLDEN.relative_to(REPO)}: {len(images)} images, {len(cli['columns'])} CSV columns", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
