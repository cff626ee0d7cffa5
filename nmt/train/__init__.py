"""Training: build (config -> parts), state (what a checkpoint holds), loop,
validation, log, schedule, distributed."""
