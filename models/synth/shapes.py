"""Procedural non-digit drawings as polylines in unit space (about [-1, 1]
high, y down): the negatives for outlier exposure and the non-digit test set.

Everything here is drawn by this code from coordinates written by hand or
drawn at random: no typeface or vector-font glyphs.  Letters that read as
digits (O, I, l, S, Z, B, G, g, q, b, T, J, L, U, C, D, P) are left out on purpose.
"""
import numpy as np


def arc(cx, cy, rx, ry, a0, a1, n=24):
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


L = lambda *p: np.array(p, np.float64)  # noqa: E731  a polyline from points

LETTERS = {
    "A": [L((-0.6, 1), (0, -1), (0.6, 1)), L((-0.33, 0.3), (0.33, 0.3))],
    "E": [L((0.6, -1), (-0.5, -1), (-0.5, 1), (0.6, 1)), L((-0.5, 0), (0.4, 0))],
    "F": [L((0.6, -1), (-0.5, -1), (-0.5, 1)), L((-0.5, 0), (0.4, 0))],
    "H": [L((-0.5, -1), (-0.5, 1)), L((0.5, -1), (0.5, 1)), L((-0.5, 0), (0.5, 0))],
    "K": [L((-0.5, -1), (-0.5, 1)), L((0.5, -1), (-0.45, 0.1)), L((-0.2, -0.15), (0.55, 1))],
    "M": [L((-0.7, 1), (-0.6, -1), (0, 0.4), (0.6, -1), (0.7, 1))],
    "N": [L((-0.5, 1), (-0.5, -1), (0.5, 1), (0.5, -1))],
    "R": [np.concatenate([L((-0.5, 1), (-0.5, -1)), arc(-0.05, -0.5, 0.5, 0.5, -90, 90), L((-0.5, 0))]),
          L((-0.1, 0), (0.5, 1))],
    "V": [L((-0.6, -1), (0, 1), (0.6, -1))],
    "W": [L((-0.8, -1), (-0.4, 1), (0, -0.3), (0.4, 1), (0.8, -1))],
    "X": [L((-0.6, -1), (0.6, 1)), L((0.6, -1), (-0.6, 1))],
    "Y": [L((-0.6, -1), (0, 0)), L((0.6, -1), (0, 0), (0, 1))],
    "e": [np.concatenate([L((-0.6, 0.1), (0.6, 0.1)), arc(0, 0.1, 0.6, 0.7, 0, -300)])],
    "h": [L((-0.5, -1), (-0.5, 1)), np.concatenate([arc(0, 0.2, 0.5, 0.5, 180, 360), L((0.5, 1))])],
    "m": [L((-0.8, 1), (-0.8, -0.3)), np.concatenate([arc(-0.4, 0, 0.4, 0.4, 180, 360), L((0, 1))]),
          np.concatenate([arc(0.4, 0, 0.4, 0.4, 180, 360), L((0.8, 1))])],
    "n": [L((-0.5, 1), (-0.5, -0.5)), np.concatenate([arc(0, -0.1, 0.5, 0.5, 180, 360), L((0.5, 1))])],
    "w": [L((-0.8, -0.6), (-0.4, 1), (0, 0), (0.4, 1), (0.8, -0.6))],
    "x": [L((-0.5, -0.5), (0.5, 1)), L((0.5, -0.5), (-0.5, 1))],
}


def star(rng):
    k = int(rng.integers(5, 8))
    a = np.radians(np.arange(2 * k + 1) * 180 / k - 90)
    r = np.where(np.arange(2 * k + 1) % 2 == 0, 1.0, rng.uniform(0.35, 0.55))
    return [np.stack([r * np.cos(a), r * np.sin(a)], 1)]


def polygon(rng, n, aspect):
    a = np.radians(np.arange(n + 1) * 360 / n + rng.uniform(-10, 10) + (45 if n == 4 else -90))
    return [np.stack([np.cos(a) * aspect, np.sin(a)], 1)]


def scribble(rng, turns=None):
    n = int(turns or rng.integers(6, 14))
    ctrl = rng.uniform(-1, 1, (n, 2))
    t = np.linspace(0, n - 1, n * 12)
    x = np.interp(t, np.arange(n), ctrl[:, 0])
    y = np.interp(t, np.arange(n), ctrl[:, 1])
    k = np.ones(7) / 7  # smooth the corners like a quick hand does
    return [np.stack([np.convolve(x, k, "valid"), np.convolve(y, k, "valid")], 1)]


def grid(rng):
    nx, ny = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    lines = [L((-1, y), (1, y)) for y in np.linspace(-0.6, 0.6, ny)]
    return lines + [L((x, -1), (x, 1)) for x in np.linspace(-0.6, 0.6, nx)]


def spiral(rng):
    t = np.linspace(0, rng.uniform(2.5, 4.5) * 2 * np.pi, 200)
    r = t / t[-1]
    return [np.stack([r * np.cos(t), r * np.sin(t)], 1)]


def wave(rng, zig):
    n = int(rng.integers(3, 7))
    x = np.linspace(-1, 1, n * 2 + 1 if zig else 120)
    y = (np.where(np.arange(len(x)) % 2 == 0, -1, 1) if zig else np.sin(x * n * np.pi / 2)) * rng.uniform(0.15, 0.4)
    return [np.stack([x, y], 1)]


def symbol(rng):
    # No "!", "/" or hatching: a lone bar reads as a 1, and pushing 1s towards
    # "unsure" cost held-out accuracy.
    s = rng.choice(["=", "#", "%", "?", "<", ">", "*", "~", "arrow", "check"])
    if s == "=":
        return [L((-1, -0.25), (1, -0.25)), L((-1, 0.25), (1, 0.25))]
    if s == "#":
        return [L((-0.3, -1), (-0.4, 1)), L((0.4, -1), (0.3, 1)), L((-1, -0.35), (1, -0.35)), L((-1, 0.35), (1, 0.35))]
    if s == "%":
        return [L((0.7, -1), (-0.7, 1)), arc(-0.5, -0.6, 0.25, 0.3, 0, 360), arc(0.5, 0.6, 0.25, 0.3, 0, 360)]
    if s == "?":
        return [np.concatenate([arc(0, -0.45, 0.5, 0.5, 180, 400), L((0.05, 0.4))]), L((0.05, 0.95))]
    if s in "<>":
        sg = 1 if s == "<" else -1
        return [L((0.6 * sg, -0.8), (-0.6 * sg, 0), (0.6 * sg, 0.8))]
    if s == "*":
        return [L((np.cos(a), np.sin(a)), (-np.cos(a), -np.sin(a))) for a in np.radians([90, 30, 150])]
    if s == "~":
        return [np.stack([np.linspace(-1, 1, 60), 0.3 * np.sin(np.linspace(0, 2 * np.pi, 60))], 1)]
    if s == "arrow":
        return [L((-1, 0), (1, 0)), L((0.5, -0.45), (1, 0), (0.5, 0.45))]
    return [L((-0.8, 0), (-0.25, 0.7), (0.9, -1))]  # check mark


def compose(rng):
    """A made-up glyph from 3-5 random strokes (letter-like, training only)."""
    lines = []
    for _ in range(int(rng.integers(3, 6))):
        if rng.random() < 0.6:
            lines.append(rng.uniform(-1, 1, (int(rng.integers(2, 4)), 2)))
        else:
            c = rng.uniform(-0.5, 0.5, 2)
            a0 = rng.uniform(0, 360)
            lines.append(arc(c[0], c[1], rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6), a0, a0 + rng.uniform(90, 300)))
    return lines


KINDS = ["letter", "symbol", "cross", "square", "triangle", "star", "grid", "scribble",
         "dot", "dots", "dash", "dashes", "zigzag", "wave", "spiral"]


def make(kind, rng):
    """Polylines for one drawing of `kind`."""
    if kind == "letter":
        return [l.copy() for l in LETTERS[rng.choice(sorted(LETTERS))]]
    if kind == "symbol":
        return symbol(rng)
    if kind == "cross":
        if rng.random() < 0.5:
            return [L((-1, 0), (1, 0)), L((0, -1), (0, 1))]
        return [L((-0.8, -1), (0.8, 1)), L((0.8, -1), (-0.8, 1))]
    if kind == "square":
        return polygon(rng, 4, rng.uniform(0.7, 1.3))
    if kind == "triangle":
        return polygon(rng, 3, rng.uniform(0.8, 1.2))
    if kind == "star":
        return star(rng)
    if kind == "grid":
        return grid(rng)
    if kind == "scribble":
        return scribble(rng)
    if kind == "dot":
        return [L((0, 0))]
    if kind == "dots":
        return [L(tuple(p)) for p in rng.uniform(-1, 1, (int(rng.integers(2, 6)), 2))]
    if kind == "dash":
        return [L((-1, 0), (1, 0))]
    if kind == "dashes":
        n = int(rng.integers(2, 4))
        return [L((-1 + 2 * i / n, 0), (-1 + 2 * i / n + 1.2 / n, 0)) for i in range(n)]
    if kind in ("zigzag", "wave"):
        return wave(rng, kind == "zigzag")
    if kind == "spiral":
        return spiral(rng)
    if kind == "compose":
        return compose(rng)
    raise ValueError(kind)
