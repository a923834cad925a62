"""The node's second look (nodes/mnist-infer/inference/second-look.ts), so that the
figures "as the node sees them" are what the node answers: an image whose top
probability is below the threshold gets its probabilities averaged over itself and
four copies moved one pixel diagonally, and stays unsure."""
import numpy as np

MOVES = ((1, 1), (-1, -1), (1, -1), (-1, 1))  # (down, right), as in second-look.ts


def moved(x, dy, dx):
    """[N,1,28,28] moved by (dy, dx) pixels; what moves in is blank."""
    out = np.zeros_like(x)
    side = x.shape[-1]
    src = lambda d: slice(max(0, -d), side - max(0, d))  # noqa: E731
    dst = lambda d: slice(max(0, d), side - max(0, -d))  # noqa: E731
    out[..., dst(dy), dst(dx)] = x[..., src(dy), src(dx)]
    return out


def second_look(probs_of, x, probs, skip, threshold):
    """Averages, in place, the rows of `probs` below `threshold` (except `skip`, images
    with no ink) over their moved copies, with `probs_of(images) -> probabilities`.
    Returns the mask of images looked at again (all of them unsure)."""
    looked = (probs.max(1) < threshold) & ~skip
    if looked.any():
        copies = [probs_of(moved(x[looked], dy, dx)) for dy, dx in MOVES]
        probs[looked] = (probs[looked] + sum(copies)) / (len(MOVES) + 1)
    return looked
