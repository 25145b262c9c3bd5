"""Customer-health models: who is likely to lapse, how much they will buy, what they are worth.

Pure numpy/scipy, no Django: the models work on arrays of per-customer summaries (frequency, recency,
age, average spend) so they can be fitted and scored in bulk, in a task or a notebook alike.

- :mod:`loyalty.health.bgnbd`: BG/NBD purchase model; ``p_no_purchase`` is the at-risk score.
- :mod:`loyalty.health.gamma_gamma`: Gamma-Gamma spend model and a simple customer lifetime value.
- :mod:`loyalty.health.metrics`: ROC AUC, Brier score, precision of the top-ranked share.
- :mod:`loyalty.health.rfm`: RFM quintile scores and the segment grid.
- :mod:`loyalty.health.risk`: the at-risk score learnt from a backtest, calibrated and carried to today.
- :mod:`loyalty.health.logistic`: the logistic regression the at-risk score is fitted with.
"""

from loyalty.health import bgnbd, gamma_gamma, metrics

__all__ = ["bgnbd", "gamma_gamma", "metrics"]
