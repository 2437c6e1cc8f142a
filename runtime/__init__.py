"""The runtime: Optimizer base, registry, classes built from generated code, Updater,
lr schedulers, array backends."""
