"""Meshes over (data, fsdp, tensor), logical-axis -> mesh-axis rules, parameter and batch shardings, multi-host
start-up (`sharding`). Imports only from core/."""
