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


def other_writers(node_inputs):
    """-> (inputs as the node prepares them [N,1,28,28], labels), or None if absent.
    `node_inputs` is evaluate.py's; each image is given as it is, 8 x 8, white ink on black."""
    if not os.path.exists(FILE):
        return None
    with gzip.open(FILE) as f:
        rows = np.loadtxt(f, delimiter=",")
    items = [(np.rint(r[:64].reshape(8, 8) / 16 * 255).astype(np.uint8), None, int(r[64])) for r in rows]
    return node_inputs(items)[0], rows[:, 64].astype(int)


def other_writer_figures(probs, labels, threshold, looked):
    """Accuracy, share flagged unsure, accuracy on the sure ones and per digit; `looked`: the second look's, unsure."""
    ok, sure = probs.argmax(1) == labels, (probs.max(1) >= threshold) & ~looked
    return {"count": len(ok), "accuracy": round(float(ok.mean()), 4), "unsure": round(float(1 - sure.mean()), 4),
            "accuracySure": round(float(ok[sure].mean()), 4),
            "accuracyByDigit": [round(float(ok[labels == d].mean()), 3) for d in range(10)]}
