"""The whole classic MNIST run in one process, fastinit: load, He init, 2000 SGD steps.

784-100-100-100-100-10 ReLU, SGD lr 0.01, batches of 128 drawn with replacement.
Timed from the outside as a fresh process (``bench/test_bench_train.py``, group
``script``), against ``mnist_jax.py`` in the same run.
"""

from fastinit import MLP, datasets, optim

(x, t), _ = datasets.load_mnist()
model = MLP([784, 100, 100, 100, 100, 10], activation="relu", init="he_normal", seed=0)
history = model.fit(
    x, t, optimizer=optim.SGD(0.01), batch_size=128, iterations=2000, progress=False
)
print(f"final loss {history.loss[-1]:.4f}")
