"""ZenML-facing helpers: promotion, model versions, remote options, schedules, secrets,
step context and the steps' scratch folders."""
