"""Primitives with no knowledge of models or training: file access for local and gs:// paths (`fs`), the jax
platform choice made before any backend starts (`platform`), the aliases of pre-folder module paths.
Imports nothing from the rest of the package."""
