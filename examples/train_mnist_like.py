"""Compare weight initializations on synthetic MNIST-shaped data, all on the same batches.

The classic experiment ("Deep Learning from Scratch", ch. 6): a 784-100-100-100-100-10
ReLU network trained by SGD, initialized with N(0, 0.01^2), Xavier and He.  The
three networks see exactly the same minibatch at every iteration (one compiled
loop trains them together, see ``fastinit.train.fit_many``).  The data are
synthetic: ten random "digit" prototypes in [0, 1]^784 plus noise, so the
script runs anywhere in a few seconds.

Run: ``python examples/train_mnist_like.py [--iterations 2000]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from fastinit import MLP, optim
from fastinit.train import fit_many

PROTOTYPES = (np.random.default_rng(123).random((10, 784)) < 0.2).astype(np.float32)


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of 784 pixels in [0, 1]: one of 10 fixed prototypes plus noise, and labels."""
    rng = np.random.default_rng(seed)
    prototypes = PROTOTYPES
    labels = rng.integers(0, 10, n)
    noise = rng.normal(0.0, 0.35, size=(n, 784)).astype(np.float32)
    return np.clip(prototypes[labels] + noise, 0.0, 1.0), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    if args.iterations < 1:  # worded as fastinit's own errors
        parser.error(f"--iterations: expected an integer in [1, inf], got {args.iterations}")

    x_train, y_train = synthetic_digits(20000, seed=0)
    x_test, y_test = synthetic_digits(2000, seed=1)
    sizes = [784, 100, 100, 100, 100, 10]
    inits = {
        "std=0.01": ("normal", {"std": 0.01}),
        "Xavier": "xavier_normal",
        "He": "he_normal",
    }
    models = {
        name: MLP(sizes, activation="relu", init=init, seed=0) for name, init in inits.items()
    }
    histories = fit_many(
        list(models.values()),
        x_train,
        y_train,
        optimizer=optim.SGD(0.01),
        batch_size=128,
        iterations=args.iterations,
        sampling="replacement",
        seed=0,
    )
    print(f"{'init':>9} | {'first loss':>10} | {'last 100 mean':>13} | test acc | status")
    for (name, model), h in zip(models.items(), histories, strict=True):
        acc = model.evaluate(x_test, y_test)["accuracy"]
        last = h.loss[-100:].mean()
        print(f"{name:>9} | {h.loss[0]:10.4f} | {last:13.4f} | {acc:8.3f} | {h.status}")
    seconds = histories[0].wall_time
    steps = len(models) * histories[0].iterations
    print(f"{steps} network-steps in {seconds:.2f} s ({1e3 * seconds / steps:.3f} ms per step)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "he.npz"
        models["He"].save(path)
        loaded = MLP.load(path)
        same = np.array_equal(loaded.predict(x_test), models["He"].predict(x_test))
        print(f"saved and reloaded {path.name}: identical predictions: {same}")


if __name__ == "__main__":
    main()
