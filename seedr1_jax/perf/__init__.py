"""Fit and speed: `aot` (compile the step's programs for a TPU topology or this machine; memory, FLOPs, the
predicted step; `--search`), `roofline` (costs read from compiled HLO, chips, the step prediction), `validate`
(predicted against measured on a real device). An application layer: imports from rl/ and everything below."""
