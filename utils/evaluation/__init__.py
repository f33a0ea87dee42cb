"""Evaluation: generate on a split and score it (`evaluator`), and the HTML report of the
predictions (`report`); the metrics themselves live in `utils.metrics`."""
