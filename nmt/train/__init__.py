"""Training: the loop, validation, schedules, data parallelism."""
