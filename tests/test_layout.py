"""chexmask.io.layout.expert_masks: one reader of a source's expert masks (SCR .npz or lungs .png)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from chexmask._errors import InputError
from chexmask.io.layout import expert_masks


def test_scr_masks_by_organ_and_lungs_png_by_group(tmp_path):
    (tmp_path / "scr_masks").mkdir()
    (tmp_path / "masks").mkdir()
    heart = np.zeros((8, 8), np.uint8)
    heart[2:4, 2:4] = 1
    np.savez(tmp_path / "scr_masks" / "A.npz", right_lung=np.eye(8, dtype=bool), left_lung=np.eye(8, dtype=bool)[::-1],
             heart=heart, other=np.ones(3))
    cv2.imwrite(str(tmp_path / "masks" / "B.png"), np.pad(np.full((4, 4), 255, np.uint8), 2))
    scr = expert_masks(tmp_path, "A")
    assert list(scr) == ["right_lung", "left_lung", "heart"]  # organs only, in organ order
    assert all(m.dtype == bool for m in scr.values()) and scr["heart"].sum() == 4
    lungs = expert_masks(tmp_path, "B")
    assert list(lungs) == ["lungs"] and lungs["lungs"].dtype == bool and lungs["lungs"].sum() == 16


def test_no_expert_mask(tmp_path):
    with pytest.raises(InputError, match=r"no expert mask for C \(scr_masks/C.npz or masks/C.png\)"):
        expert_masks(tmp_path, "C")
    assert expert_masks(tmp_path, "C", missing_ok=True) == {}
