#!/usr/bin/env python3
"""Writes the small ONNX fixtures of ml/tests/ (committed; rerun only if the
export format changes): wrong_width.onnx has the right input and output names
but 19 input columns instead of 20."""

from pathlib import Path

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from onnx import helper

import train

out = Path(__file__).resolve().parents[1] / "tests" / "data"
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
width = train.N - 1
x = rng.normal(size=(200, width)).astype(np.float32)
parts = []
for prefix, name, high in (("refl_", train.REFL, 100.0), ("days_", train.DAYS, train.HORIZON)):
    m = GradientBoostingRegressor(n_estimators=2, max_depth=2, random_state=0).fit(x, x[:, 0])
    onx = train.convert_sklearn(m, initial_types=[("features", train.FloatTensorType([None, width]))],
                                target_opset={"": 17, "ai.onnx.ml": 3})
    parts.append((prefix, onx, name, 0.0, high))
model = train.merge(parts, width=width)
helper.set_model_props(model, {"model_version": "test-wrong-width"})
(out / "wrong_width.onnx").write_bytes(model.SerializeToString())
print(f"wrote {out / 'wrong_width.onnx'}")
