"""Digits by writers MNIST never had: scikit-learn's copy of the UCI "optical
recognition of handwritten digits" test set (Alpaydin and Kaynak, 1998), 1,797
digits by 13 people, as Debian's python3-sklearn ships it. Each is an 8 x 8 grid
of counts (0-16) of the ink pixels in 4 x 4 blocks of a 32 x 32 bitmap, so it
reaches the node as a tiny, blurred image. Never trained on; reported, it decides
nothing (evaluate.py). Without python3-sklearn the set is skipped.
"""
import gzip
import os

import numpy as np

FILE = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
SOURCE = "Debian python3-sklearn: sklearn/datasets/data/digits.csv.gz (UCI optdigits test set, 13 writers)"


def other_writers():
    """-> list of (uint8 8x8 image, None, label), white ink on black, or None if absent."""
    if not os.path.exists(FILE):
        return None
    with gzip.open(FILE) as f:
        rows = np.loadtxt(f, delimiter=",")
    return [(np.rint(r[:64].reshape(8, 8) / 16 * 255).astype(np.uint8), None, int(r[64])) for r in rows]
