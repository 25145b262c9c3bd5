"""Logistic regression for the at-risk score (:mod:`loyalty.health.risk`): the weights of an
L2-penalised fit solved to the optimum itself, and an overflow-free logistic function.

Pure numpy/scipy; no Django.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

#: The penalty on every weight but the intercept.
L2 = 1e-3
#: L-BFGS-B steps that bring the weights close, then at most this many Newton steps to the optimum.
QUASI_NEWTON_STEPS = 20
NEWTON_STEPS = 30


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))  # overflow-free logistic


def logistic_weights(X: np.ndarray, y: np.ndarray, l2: float = L2, start: np.ndarray | None = None) -> np.ndarray:
    """Weights of an L2-penalised (intercept excluded) logistic regression: the optimum itself.

    A few L-BFGS-B steps from ``start`` bring it close; Newton steps (with step halving) then land on the
    optimum, so that inputs equal up to float noise (the database's sums and the bench's) give the same
    weights, not wherever an optimiser's tolerances let it stop. Both work on columns scaled to unit spread
    (same objective, same answer: the penalty is on the original weights)."""
    n = X.shape[0]
    scale = np.ones(X.shape[1])
    spread = X[:, 1:].std(axis=0)
    scale[1:] = np.where(spread > 0, spread, 1.0)
    Xs = X / scale
    penalty = np.r_[0.0, np.full(X.shape[1] - 1, l2)] / scale**2  # l2 * w**2 with w = v / scale

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        z = Xs @ v
        loss = np.sum(np.logaddexp(0.0, z) - y * z) / n + np.sum(penalty * v**2)
        grad = Xs.T @ (sigmoid(z) - y) / n + 2 * penalty * v
        return loss, grad

    v0 = np.zeros(X.shape[1]) if start is None else np.asarray(start, dtype=float) * scale
    result = minimize(objective, v0, jac=True, method="L-BFGS-B", options={"maxiter": QUASI_NEWTON_STEPS})
    v, loss = result.x, float(result.fun)
    for _ in range(NEWTON_STEPS):
        p = sigmoid(Xs @ v)
        grad = Xs.T @ (p - y) / n + 2 * penalty * v
        hessian = (Xs * (p * (1 - p))[:, None]).T @ Xs / n + np.diag(2 * penalty)
        try:
            step = np.linalg.solve(hessian, grad)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t >= 1e-3:  # halve the step until the loss does not rise
            new_loss = objective(v - t * step)[0]
            if np.isfinite(new_loss) and new_loss <= loss:
                break
            t /= 2
        else:
            break  # no descent left: at the optimum (to float precision)
        v, loss = v - t * step, new_loss
        if np.max(np.abs(t * step)) < 1e-10:
            break
    weights = v / scale
    if not np.all(np.isfinite(weights)):
        raise ValueError("the risk model did not converge to finite weights")
    return weights
