"""Applications that run models and read results: `evaluate` (L1/L2/L3/LongVideoBench accuracy), `demo`, `study`
(Vanilla vs SFT vs GRPO at toy scale), `attention` and `attention_figures` (where generated tokens look).
Imports from rl/ and everything below; never from cli.py."""
