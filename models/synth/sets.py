"""Images as users send them: digits re-drawn on a canvas or photographed on
paper, and non-digit drawings.  `test=False` draws the training distribution
(continuous random ranges); `test=True` draws the evaluation sets with their
own named pens and ranges (and callers use other seeds), so the test sets
are not samples of the training augmentation.
"""
import numpy as np

from . import pen, shapes
from .preprocess import preprocess_or_none

# Evaluation pens: (name, radius as a share of the drawn height, min px, antialiased, pressure)
CANVAS_PENS = [("mouse-thin", 0.0, 1.0, False, 0.0), ("mouse", 0.045, 1.5, False, 0.0),
               ("brush", 0.06, 1.0, True, 0.3), ("finger", 0.085, 2.0, True, 0.15),
               ("marker", 0.08, 1.5, True, 0.0), ("pencil-tool", 0.03, 0.7, True, 0.2)]
PAPER_PENS = [("ballpoint", 0.03, 0.8, 0.0), ("felt-tip", 0.06, 1.2, 0.0),
              ("pencil", 0.035, 0.8, 0.6), ("marker", 0.09, 1.5, 0.0)]
# Side of a training photo of paper, px, drawn log-uniformly (train.py --paper-from sets the first).
PAPER_SIDES = (40, 240)


def _geometry(rng, test, side_range, frac_range):
    """Canvas size, drawn height, centre and the drawing's pose."""
    if test:
        side = int(rng.choice([28, 40, 64, 100, 150, 200]))
        h, w = side, int(np.clip(side * rng.choice([1.0, 1.0, 1.33, 0.75]), 28, 260))
    else:
        side = int(np.exp(rng.uniform(*np.log(side_range))))
        h, w = side, int(np.clip(side * rng.uniform(0.75, 1.35), 28, 260))
    height = min(h, w) * rng.uniform(*frac_range)
    m = height * 0.6
    centre = (rng.uniform(m, w - m) if w > 2 * m else w / 2, rng.uniform(m, h - m) if h > 2 * m else h / 2)
    # Test poses stay legible (a person would still read the digit); training
    # goes a little further so the test range sits inside it.
    pose = dict(rotate=np.radians(rng.uniform(-12, 12) if test else rng.uniform(-20, 20)),
                slant=rng.uniform(-0.3, 0.3) if test else rng.uniform(-0.4, 0.4),
                aspect=rng.uniform(0.8, 1.2) if test else rng.uniform(0.7, 1.3),
                wobble_amount=rng.uniform(0, 0.07) if test else rng.uniform(0, 0.12))
    return (h, w), height, centre, pose


def draw_canvas(pts, rng, test=False, pose_override=None):
    size, height, centre, pose = _geometry(rng, test, (28, 220), (0.35, 0.9))
    if pose_override:
        pose.update(pose_override)
    if test:
        _, share, lo, aa, pressure = CANVAS_PENS[int(rng.integers(len(CANVAS_PENS)))]
        radius = max(lo, share * height * rng.uniform(0.8, 1.2))
    else:
        radius = max(rng.uniform(0.55, 1.6), height * rng.uniform(0.02, 0.14))
        aa, pressure = rng.random() < 0.7, rng.uniform(0, 0.4) * (rng.random() < 0.5)
    ink = pen.draw(pts, rng, size, height, radius, centre=centre, antialias=aa, pressure=pressure, **pose)
    mode = rng.choice(["light", "dark", "alpha", "colour"], p=[0.55, 0.15, 0.15, 0.15])
    return pen.canvas(ink, rng, mode), None


def draw_paper(pts, rng, test=False, pose_override=None):
    size, height, centre, pose = _geometry(rng, test, PAPER_SIDES, (0.25, 0.75))
    if pose_override:
        pose.update(pose_override)
    if test:
        _, share, lo, pencil = PAPER_PENS[int(rng.integers(len(PAPER_PENS)))]
        radius = max(lo, share * height * rng.uniform(0.8, 1.2))
    else:
        radius = max(rng.uniform(0.6, 1.5), height * rng.uniform(0.02, 0.12))
        pencil = rng.uniform(0, 0.7) * (rng.random() < 0.3)
    ink = pen.draw(pts, rng, size, height, radius, centre=centre, antialias=True,
                   pressure=rng.uniform(0, 0.25), **pose)
    paper_level = rng.uniform(0.6, 0.97)
    ink_level = rng.uniform(0.0, 0.35) if not pencil else rng.uniform(0.2, 0.4)
    least = 0.4 if test else 0.3
    if paper_level - ink_level < least:
        ink_level = paper_level - least
    contrast = paper_level - ink_level
    scale = max(size) / 100
    # The node's crop treats anything above 20 % of the contrast as ink, so
    # heavy noise or shading makes it crop the whole photo (README, "known
    # failures"); the test photos stay within what a phone or scanner gives.
    # Training goes further, to teach small digits in a too-large crop.
    blur = rng.uniform(0, 1.0) * max(scale, 0.5)
    if test:
        blur = min(blur, 0.6 * radius + 0.3)
    return pen.paper(ink, rng, paper_level=paper_level, ink_level=ink_level,
                     shading=rng.uniform(0, 0.2 if test else 0.3) * contrast,
                     grain=rng.uniform(0, 0.05 if test else 0.08) * contrast,
                     blur=blur, noise=rng.uniform(0, 0.02 if test else 0.035),
                     quality=None if rng.random() < 0.2 else rng.uniform(40 if test else 30, 95),
                     colour=rng.random() < 0.4, pencil=pencil)


def nondigit_points(kind, rng):
    """Dense points for one non-digit drawing, normalised like digit_points,
    plus the pose changes the kind needs (a dash stays roughly horizontal)."""
    lines = shapes.make(kind, rng)
    pts = pen.polyline_points(lines)
    pts = pts + rng.normal(0, 0.02, pts.shape) * (len(pts) > 1)
    override = {}
    if kind in ("dash", "dashes"):
        override = dict(rotate=np.radians(rng.uniform(-25, 25)), aspect=1.0)
    elif kind in ("cross", "square", "star", "grid", "scribble", "dots", "spiral", "compose"):
        override = dict(rotate=rng.uniform(0, 2 * np.pi))
    return pts, override


def render_digit(digit28, rng, medium, test=False, flag_ones=0.0, label=None, cross_sevens=0.0):
    """-> (uint8 image, JPEG bytes or None). A share `flag_ones` of 1s get a flag
    (pen.flag_a_one), a share `cross_sevens` of 7s a bar (pen.cross_a_seven)."""
    pts = pen.digit_points(digit28)
    if label == 1 and flag_ones > 0 and rng.random() < flag_ones:
        pts = pen.flag_a_one(pts, rng)
    if label == 7 and cross_sevens > 0 and rng.random() < cross_sevens:
        pts = pen.cross_a_seven(pts, rng)
    return (draw_canvas if medium == "canvas" else draw_paper)(pts, rng, test)


def render_nondigit(kind, rng, medium, test=False):
    pts, override = nondigit_points(kind, rng)
    return (draw_canvas if medium == "canvas" else draw_paper)(pts, rng, test, override)


def digit_bank(digits, labels, seed, variants, paper_share=0.4, flag_ones=0.0, cross_sevens=0.0):
    """Preprocessed (28x28) canvas/paper re-drawings of training digits.
    One generator per (seed, image, variant), so the bank does not depend on order."""
    xs, ys = [], []
    for i, (d, y) in enumerate(zip(digits, labels)):
        for v in range(variants):
            rng = np.random.default_rng([seed, i, v])
            medium = "paper" if rng.random() < paper_share else "canvas"
            x = preprocess_or_none(render_digit(d, rng, medium, flag_ones=flag_ones, label=int(y), cross_sevens=cross_sevens)[0])
            if x is not None:
                xs.append(x)
                ys.append(y)
    return np.stack(xs), np.array(ys, np.int64)


def nondigit_bank(n, seed, kinds=None):
    kinds = kinds or shapes.KINDS + ["compose"]
    xs, ks = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        kind = kinds[i % len(kinds)]
        medium = "paper" if rng.random() < 0.35 else "canvas"
        x = preprocess_or_none(render_nondigit(kind, rng, medium)[0])
        if x is not None:
            xs.append(x)
            ks.append(kind)
    return np.stack(xs), ks
