"""Initialize a deep network with several initializers and print per-layer statistics.

The classic experiment (Glorot & Bengio 2010; "Deep Learning from Scratch", ch. 6):
feed 1000 Gaussian inputs through 5 tanh/ReLU layers of 100 units and watch the
activations' spread layer by layer.  Run: ``python examples/layer_stats.py``.
"""

from __future__ import annotations

import numpy as np

from fastinit import init, random

LAYERS, WIDTH, BATCH = 5, 100, 1000
INITS = {
    "normal std=1": lambda s, k: init.normal(s, std=1.0, seed=0, stream=k),
    "normal std=0.01": lambda s, k: init.normal(s, std=0.01, seed=0, stream=k),
    "xavier sqrt(1/n)": lambda s, k: init.normal(s, std=np.sqrt(1 / s[0]), seed=0, stream=k),
    "he sqrt(2/n)": lambda s, k: init.normal(s, std=np.sqrt(2 / s[0]), seed=0, stream=k),
    "orthogonal": lambda s, k: init.orthogonal(s, seed=0, stream=k),
}
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}


def main() -> None:
    x0 = random.fill_normal(np.empty((BATCH, WIDTH), np.float32), seed=1)
    for act_name, act in ACTIVATIONS.items():
        print(f"\n{act_name}: std of each layer's activations")
        print(f"{'init':<18}" + "".join(f"{'layer ' + str(k + 1):>10}" for k in range(LAYERS)))
        for name, make in INITS.items():
            x, stds = x0, []
            for k in range(LAYERS):
                x = act(x @ make((WIDTH, WIDTH), k))
                stds.append(float(x.std()))
            print(f"{name:<18}" + "".join(f"{s:>10.4g}" for s in stds))


if __name__ == "__main__":
    main()
