"""The reliability diagram of the model card (reliability.png): accuracy against
confidence on the digit test sets, before and after (evaluate.py)."""

import numpy as np


def reliability_png(path, curves):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    edges = np.linspace(0, 1, 16)
    for label, (conf, ok), style in curves:
        xs, ys, ns = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (conf > lo) & (conf <= hi)
            if m.sum() >= 5:
                xs.append(conf[m].mean()); ys.append(ok[m].mean()); ns.append(m.sum())
        ax.plot(xs, ys, style, label=label)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability on all digit test sets\n(held-out, drawn, paper; 4,500 images)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(0, 1); ax.set_ylim(0, 1.01)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
