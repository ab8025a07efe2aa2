# ruff: noqa: NPY002  (the oracle is the notebook code, legacy global seeding included)
"""The classic planar-classification notebook's model, verbatim in spirit: the oracle.

Parameters are in the notebook's layout (W1 is (n_h, n_x)); X is (n_x, m), Y (1, m).
"""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def initialize_parameters(n_x, n_h, n_y, scale=0.01):
    np.random.seed(2)
    W1 = np.random.randn(n_h, n_x) * scale
    b1 = np.zeros((n_h, 1))
    W2 = np.random.randn(n_y, n_h) * scale
    b2 = np.zeros((n_y, 1))
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


def nn_model(X, Y, n_h, num_iterations, learning_rate=1.2, scale=0.01):
    p = initialize_parameters(X.shape[0], n_h, Y.shape[0], scale)
    m = X.shape[1]
    costs = []
    for _ in range(num_iterations):
        Z1 = np.dot(p["W1"], X) + p["b1"]
        A1 = np.tanh(Z1)
        Z2 = np.dot(p["W2"], A1) + p["b2"]
        A2 = sigmoid(Z2)
        logprobs = np.multiply(np.log(A2), Y) + np.multiply(np.log(1 - A2), 1 - Y)
        costs.append(float(-np.sum(logprobs) / m))
        dZ2 = A2 - Y
        dW2 = (1 / m) * np.dot(dZ2, A1.T)
        db2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)
        dZ1 = np.multiply(np.dot(p["W2"].T, dZ2), 1 - np.power(A1, 2))
        dW1 = (1 / m) * np.dot(dZ1, X.T)
        db1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)
        for k, g in (("W1", dW1), ("b1", db1), ("W2", dW2), ("b2", db2)):
            p[k] = p[k] - learning_rate * g
    return p, np.array(costs)


def predict(p, X):
    A2 = sigmoid(np.dot(p["W2"], np.tanh(np.dot(p["W1"], X) + p["b1"])) + p["b2"])
    return (A2 > 0.5).astype(int)
