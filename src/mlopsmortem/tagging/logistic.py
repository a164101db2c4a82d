"""A small L2-regularised logistic regression, fitted by Newton's method: the calibration's
semantic score combines a few features, and a likelihood fit generalises better than choosing
their weights by the F1 they give on the same stories (which overfits a step function)."""

from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 100
TOLERANCE = 1e-10


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # the logistic function, without overflow


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising the log-loss of `y` (booleans) given `x` (rows x
    features) plus `l2` / 2 times the squared weights (the intercept is not penalised): the
    objective of scikit-learn's LogisticRegression(C=1 / l2)."""
    if x.ndim != 2 or len(x) != len(y) or not len(y):
        raise ValueError("fit_logistic needs a non-empty 2-D x with one label per row")
    design = np.hstack([x, np.ones((len(x), 1))])
    target = np.asarray(y, dtype=float)
    penalty = np.full(design.shape[1], float(l2))
    penalty[-1] = 0.0
    theta = np.zeros(design.shape[1])
    for _ in range(MAX_ITERATIONS):
        p = sigmoid(design @ theta)
        gradient = design.T @ (p - target) + penalty * theta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        # a tiny ridge keeps the step defined when one class is absent
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
        theta -= step
        if float(np.abs(step).max()) < TOLERANCE:
            break
    return theta[:-1], float(theta[-1])
