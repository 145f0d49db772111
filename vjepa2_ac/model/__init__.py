"""The model core: the frozen V-JEPA 2 encoder, the action-conditioned predictor, the world model that joins them,
pose algebra, preprocessing, checkpoints (official ``.pt``, our safetensors, the hub) and the bundled models.

This subpackage imports neither ``envs`` nor ``planners``: it knows nothing about simulators or planning.
"""
