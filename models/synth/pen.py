"""Re-draw strokes with other pens, on a canvas or on paper.

A drawing is a dense cloud of points on the pen's path, in "unit" space (the
shape spans about [-1, 1] vertically).  Digits get theirs from the skeleton of
an MNIST digit, non-digits from polylines (shapes.py).  `draw` maps the points
onto a canvas (size, position, rotation, slant, elastic wobble, pen width that
varies like pressure) and rasterises them; `canvas` and `paper` turn the ink
into the uint8 image a user would send (PNG canvas, or a photo/scan of paper).
"""
import io

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize


def digit_points(digit28):
    """Skeleton of a 28x28 MNIST digit -> dense [N,2] (x, y) points in unit space."""
    big = ndimage.zoom(digit28.astype(np.float64), 4, order=1)
    sk = skeletonize(big > 0.35)
    if sk.sum() < 2:
        sk = big > 0.35
    ys, xs = np.nonzero(sk)
    pts = [np.stack([xs, ys], 1).astype(np.float64)]
    # Densify along the links between 8-neighbour skeleton pixels, so no gaps
    # open when the digit is drawn large.
    for dy, dx in ((0, 1), (1, 1), (1, 0), (1, -1)):
        sy, sx = ys + dy, xs + dx
        ok = (sy < sk.shape[0]) & (sx >= 0) & (sx < sk.shape[1])
        ok[ok] = sk[sy[ok], sx[ok]]
        for t in (0.25, 0.5, 0.75):
            pts.append(np.stack([xs[ok] + t * dx, ys[ok] + t * dy], 1))
    p = np.concatenate(pts) / 4.0
    top, bottom = p[:, 1].min(), p[:, 1].max()
    centre = np.array([(p[:, 0].min() + p[:, 0].max()) / 2, (top + bottom) / 2])
    half = max((bottom - top) / 2, (p[:, 0].max() - p[:, 0].min()) / 2 * 0.8, 2.0)
    return (p - centre) / half


def flag_a_one(pts, rng):
    """A 1 as many writers outside the US make it: a flag from the top of the
    stroke down to the left, and sometimes a base. Added to the skeleton of a
    real MNIST 1 (unit space, y down), which keeps its own shape and slant."""
    top = pts[np.argmin(pts[:, 1])]
    bottom = pts[np.argmax(pts[:, 1])]
    length, angle = rng.uniform(0.5, 1.0), np.radians(rng.uniform(20, 60))
    lines = [[top, top + length * np.array([-np.cos(angle), np.sin(angle)])]]
    if rng.random() < 0.35:
        half = rng.uniform(0.25, 0.45)
        lines.append([bottom - [half, 0], bottom + [half, 0]])
    return np.concatenate([pts, polyline_points(lines)])


def cross_a_seven(pts, rng):
    """A 7 with a bar across its stem, as the writers who flag their 1s draw it."""
    y = rng.uniform(-0.1, 0.25)
    near = pts[np.abs(pts[:, 1] - y) < 0.08]
    if len(near) == 0:
        return pts
    x, half = near[:, 0].mean(), rng.uniform(0.2, 0.4)
    return np.concatenate([pts, polyline_points([[[x - half, y], [x + half, y]]])])


def polyline_points(lines, step=0.004):
    """List of [K,2] polylines (unit space) -> dense points along them."""
    out = []
    for line in lines:
        line = np.asarray(line, np.float64)
        if len(line) == 1:
            out.append(line)
            continue
        for a, b in zip(line[:-1], line[1:]):
            n = max(2, int(np.ceil(np.hypot(*(b - a)) / step)) + 1)
            t = np.linspace(0, 1, n)[:, None]
            out.append(a + t * (b - a))
    return np.concatenate(out)


def wobble(pts, rng, amount):
    """Smooth random displacement (a few low-frequency waves): elastic
    distortion in the spirit of Simard et al. 2003, on the pen path."""
    if amount <= 0:
        return pts
    d = np.zeros_like(pts)
    for _ in range(4):
        f = rng.uniform(0.5, 2.5, 2) * rng.choice([-1, 1], 2)
        ph = rng.uniform(0, 2 * np.pi, 2)
        d[:, 0] += np.sin(pts @ f + ph[0]) * rng.uniform(0, amount)
        d[:, 1] += np.sin(pts @ f[::-1] + ph[1]) * rng.uniform(0, amount)
    return pts + d / 2


def draw(pts, rng, size, height, radius, *, rotate=0.0, slant=0.0, aspect=1.0,
         wobble_amount=0.0, pressure=0.0, antialias=True, centre=None):
    """Rasterise points as a round pen.  size=(H, W) of the canvas, height = drawn
    height in px, radius = pen radius in px.  Returns float ink [H, W] in 0-1."""
    h, w = size
    p = wobble(pts, rng, wobble_amount)
    c, s = np.cos(rotate), np.sin(rotate)
    m = np.array([[c, -s], [s, c]]) @ np.array([[aspect, -slant], [0, 1.0]])
    p = p @ m.T * (height / 2)
    if centre is None:
        centre = (w / 2, h / 2)
    p = p + np.asarray(centre)
    r = np.full(len(p), float(radius))
    if pressure > 0:  # pen width varying smoothly along the path
        f = rng.uniform(0.5, 3, 2)
        r *= 1 + pressure * np.sin((p - p.mean(0)) / (height / 2 + 1e-9) @ f + rng.uniform(0, 6.3))
    r = np.maximum(r, 0.55)
    ix = np.floor(p).astype(int)
    ink = np.zeros((h, w), np.float32)
    inside = (ix[:, 0] >= 0) & (ix[:, 0] < w) & (ix[:, 1] >= 0) & (ix[:, 1] < h)
    if not inside.any():
        return ink
    ix, r = ix[inside], r[inside]
    # Distance transform only over the drawing's bounding box (speed).
    pad = int(np.ceil(r.max())) + 2
    x0, y0 = max(0, ix[:, 0].min() - pad), max(0, ix[:, 1].min() - pad)
    x1, y1 = min(w, ix[:, 0].max() + pad + 1), min(h, ix[:, 1].max() + pad + 1)
    free = np.ones((y1 - y0, x1 - x0), bool)
    rad = np.zeros(free.shape)
    # Several points can fall into one pixel: keep the largest radius.
    order = np.argsort(r)
    free[ix[order, 1] - y0, ix[order, 0] - x0] = False
    rad[ix[order, 1] - y0, ix[order, 0] - x0] = r[order]
    dist, (ny, nx) = ndimage.distance_transform_edt(free, return_indices=True)
    rr = rad[ny, nx]
    sub = np.clip(rr - dist + 0.5, 0, 1) if antialias else (dist <= rr).astype(np.float64)
    ink[y0:y1, x0:x1] = sub
    return ink


def smooth_noise(rng, h, w, scale):
    """Smooth random field in about -1..1 (for paper texture and shading)."""
    g = rng.standard_normal((max(2, h // scale + 2), max(2, w // scale + 2)))
    f = ndimage.zoom(g, (h / (g.shape[0] - 1) + 0.01, w / (g.shape[1] - 1) + 0.01), order=3)[:h, :w]
    return f / (np.abs(f).max() + 1e-9)


def jpeg(img, quality):
    """-> (decoded pixels, the JPEG file's bytes)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue()))), buf.getvalue()


def canvas(ink, rng, mode):
    """A drawing app's export.  mode: 'light' (dark ink on white), 'dark'
    (white ink on black), 'alpha' (RGBA, ink on transparent), 'colour'."""
    if mode == "dark":
        return np.rint(ink * 255).astype(np.uint8)
    if mode == "alpha":
        out = np.zeros(ink.shape + (4,), np.uint8)
        out[..., 3] = np.rint(ink * 255)
        return out
    if mode == "colour":
        col = rng.uniform(0, 0.5, 3)
        bg = rng.uniform(0.9, 1.0, 3)
        return np.rint((bg * (1 - ink[..., None]) + col * ink[..., None]) * 255).astype(np.uint8)
    return np.rint((1 - ink) * 255).astype(np.uint8)


def paper(ink, rng, *, paper_level, ink_level, shading, grain, blur, noise, quality,
          colour=False, pencil=0.0):
    """Ink on paper, photographed or scanned: uneven light, paper grain, blur,
    sensor noise and JPEG.  Levels are 0 (black) - 1 (white).
    Returns (pixels, JPEG bytes or None)."""
    h, w = ink.shape
    if pencil > 0:  # pencil: the stroke's darkness breaks up with the paper's tooth
        ink = ink * (1 - pencil * np.clip(rng.random((h, w)) * 1.4, 0, 1))
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ang = rng.uniform(0, 2 * np.pi)
    light = paper_level + shading * ((np.cos(ang) * xx + np.sin(ang) * yy) - 0.5)
    light = light + grain * smooth_noise(rng, h, w, max(2, min(h, w) // 12))
    img = light * (1 - ink) + ink_level * ink
    if blur > 0:
        img = ndimage.gaussian_filter(img, blur)
    img = img + noise * rng.standard_normal((h, w))
    if colour:
        tint_paper = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 1.0)])
        tint_ink = rng.uniform(0.6, 1.4, 3)
        rgb = img[..., None] * tint_paper
        rgb = rgb * (1 - ink[..., None]) + np.clip(img[..., None] * tint_ink, 0, 1) * ink[..., None]
        img8 = np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    else:
        img8 = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return jpeg(img8, quality) if quality else (img8, None)
