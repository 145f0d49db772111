"""Sub-commands of the ``vjepa2-ac`` CLI: one module per command, each with ``configure(parser)`` and ``run(args)``;
``common`` holds what they share.

Command modules keep heavy imports (torch, mujoco) inside ``run`` so that ``vjepa2-ac --help`` is fast.
"""
