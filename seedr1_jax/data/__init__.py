"""The input pipeline (`pipeline`: prepared TFRecords -> fixed-shape batches -> global arrays) and the typed
device batches (`batch`: Prompts, GRPOBatch, SFTBatch). Imports from models/, parallel/ and core/ only.

`seedr1_jax.data.X` is the pipeline's X (`data.make_batch`, `data.default_config`, ...), as before the folders."""

from seedr1_jax.data.pipeline import *  # noqa: F403
from seedr1_jax.data.pipeline import __all__  # noqa: F401
