"""Training-time data: on-the-fly augmentation of 28x28 batches (affine,
elastic, stroke width, blur) and the banks of canvas/paper digits and
non-digits made once per run, all in the node's preprocessed form.
Used by train.py."""
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import sets
from .preprocess import preprocess_or_none

_BLUR = torch.tensor([0.25, 0.5, 0.25])
_BLUR = (_BLUR[:, None] * _BLUR[None, :]).view(1, 1, 3, 3)


def _gauss1d(sigma):
    r = int(3 * sigma)
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma ** 2))
    return k / k.sum()


_ELASTIC_K = _gauss1d(4.0)


def elastic_field(b, gen, alpha_px):
    """Smooth random displacement [B,28,28,2] in affine_grid units (Simard et
    al. 2003: uniform noise smoothed by a Gaussian, sigma 4 px), scaled so the
    largest displacement is alpha_px[i] pixels."""
    k = _ELASTIC_K
    n = torch.rand(b * 2, 1, 28, 28, generator=gen) * 2 - 1
    r = len(k) // 2
    n = F.conv2d(F.pad(n, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    n = F.conv2d(F.pad(n, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    n = n.view(b, 2, 28, 28)
    n = n / n.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (n * (alpha_px / 14).view(b, 1, 1, 1)).permute(0, 2, 3, 1)


def augment(x, gen, strength=1.0, elastic=0.5):
    """Random geometric + stroke augmentation of a batch [B,1,28,28] in 0-1.

    The node centres digits the MNIST way, but what it is sent (drawn,
    photographed) is rarely centred, scaled, stroked like MNIST, so the model
    sees shifted, rotated, scaled, sheared, elastically bent, thickened,
    thinned and blurred variants.  `strength` scales the geometric ranges
    (the canvas/paper bank and the negatives already vary a lot and get less).
    """
    b = x.shape[0]

    def u(lo, hi, n=b):
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    angle = u(-15, 15) * (torch.pi / 180) * strength
    scale = 1 + u(-0.15, 0.15) * strength
    shear = u(-0.15, 0.15) * strength
    # Shift in pixels; affine_grid uses [-1,1] coordinates, i.e. 14 px per unit.
    tx, ty = u(-2.5, 2.5) / 14 * strength, u(-2.5, 2.5) / 14 * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta maps output coords -> input coords, so divide by the scale.
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos / scale
    theta[:, 0, 1] = (-sin + shear * cos) / scale
    theta[:, 1, 0] = sin / scale
    theta[:, 1, 1] = (cos + shear * sin) / scale
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    # Leave ~10% of the batch geometrically untouched.
    keep = torch.rand(b, generator=gen) < 0.1
    theta[keep] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    # Elastic distortion for a share of the batch, 1-3 px at most.
    alpha = u(1.0, 3.0) * (torch.rand(b, generator=gen) < elastic).float() * strength
    grid = grid + elastic_field(b, gen, alpha)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Stroke width: blend towards a 3x3 max-pool (thicker) or min-pool (thinner)
    # by a random amount, so we get a continuum instead of just +-1 px.
    r = torch.rand(b, generator=gen)
    amount = u(0.4, 1.0).view(b, 1, 1, 1)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    m_thick = (r < 0.2).float().view(b, 1, 1, 1) * amount
    m_thin = ((r >= 0.2) & (r < 0.35)).float().view(b, 1, 1, 1) * amount
    x = x + m_thick * (thick - x) + m_thin * (thin - x)

    # Slight blur for 10% of the batch.
    blur = (torch.rand(b, generator=gen) < 0.1).float().view(b, 1, 1, 1)
    x = x + blur * (F.conv2d(x, _BLUR, padding=1) - x)
    return x.clamp_(0, 1)


def node_view(imgs):
    """What the node makes of 28x28 digits sent as 8-bit PNGs: quantise, then
    preprocess (for MNIST digits mostly just re-centring by mass)."""
    out = []
    for im in imgs:
        x = preprocess_or_none(np.rint(im * 255).clip(0, 255).astype(np.uint8))
        out.append(im if x is None else x)
    return np.stack(out).astype(np.float32)


def build_banks(x_digits, y_digits, args, tag, variants=None):
    """Canvas/paper re-drawings of the given training digits and procedural
    non-digits, all preprocessed like the node does.  Cached by arguments."""
    variants = args.variants if variants is None else variants
    key = f"{tag}-{len(x_digits)}-{variants}-{args.paper_share}-{args.negatives}-{args.seed}"
    if args.paper_from != 40:  # (keeps the names of banks cached before the option existed)
        key += f"-paper{args.paper_from}"
    if args.flag_ones:
        key += f"-flag{args.flag_ones}"
    if args.cross_sevens:
        key += f"-cross{args.cross_sevens}"
    path = os.path.join(args.cache, f"bank-{key}.npz") if args.cache else None
    if path and os.path.exists(path):
        z = np.load(path)
        return z["xd"], z["yd"], z["xn"]
    t0 = time.time()
    xd, yd = sets.digit_bank(x_digits, y_digits, seed=args.seed * 1000 + 101, variants=variants,
                            paper_share=args.paper_share, flag_ones=args.flag_ones,
                            cross_sevens=args.cross_sevens)
    print(f"  {len(xd)} canvas/paper digits ({time.time() - t0:.0f}s)", flush=True)
    t0 = time.time()
    xn, _ = sets.nondigit_bank(args.negatives, seed=args.seed * 1000 + 202)
    print(f"  {len(xn)} non-digit drawings ({time.time() - t0:.0f}s)", flush=True)
    if path:
        os.makedirs(args.cache, exist_ok=True)
        np.savez(path, xd=xd, yd=yd, xn=xn)
    return xd, yd, xn
