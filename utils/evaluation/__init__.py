"""Evaluation: generate on a split and score it (`evaluator`), the metrics (`text_metrics`,
`task_metrics`) and the HTML report of the predictions (`report`)."""
