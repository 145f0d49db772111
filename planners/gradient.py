"""Gradient planner: Adam on the action sequence through the differentiable rollout, projected onto the
constraints after every step, with several restarts optimised in one batch.

Restart 0 starts from the zero plan (or the shifted previous plan with ``warm_start``), the others from
random constrained draws. The best sequence ever evaluated is returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from planners.common import (
    SearchConfig,
    _positive,
    bind_space,
    check_generator,
    check_inputs,
    rollout_energy,
    shift_plan,
)
from planners.protocol import Plan, WorldModelLike


@dataclass
class GradientConfig(SearchConfig):
    """Gradient-planner settings (shared fields: :class:`planners.common.SearchConfig`).

    iterations: Adam steps; lr: Adam learning rate (in action units, metres for xyz); betas: Adam betas.
    restarts: sequences optimised in parallel.
    xyz_std, rotation_std, gripper_std: std of the random initialisations (``None``: ``maxnorm`` /
        ``rotation_maxnorm``).
    """

    iterations: int = 50
    lr: float = 0.005
    betas: tuple[float, float] = (0.9, 0.999)
    restarts: int = 8
    xyz_std: float | None = None
    rotation_std: float | None = None
    gripper_std: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations < 1 or self.restarts < 1:
            raise ValueError(f"iterations and restarts must be >= 1, got {self.iterations=}, {self.restarts=}")
        _positive(lr=self.lr, gripper_std=self.gripper_std)


class GradientPlanner:
    """Projected Adam through ``world_model.rollout`` (``GradientPlanner(GradientConfig()).plan(...)``)."""

    def __init__(self, config: GradientConfig | None = None) -> None:
        self.config = config if config is not None else GradientConfig()
        self.space = self.config.action_space()
        self._previous: Tensor | None = None

    def reset(self) -> None:
        self._previous = None

    def _initial(self, device: torch.device, generator: torch.Generator | None) -> Tensor:
        cfg, space = self.config, self.space
        mean = space.initial_mean(cfg.horizon, device)
        if cfg.warm_start and self._previous is not None:
            mean = shift_plan(self._previous.to(device), mean)
        std = space.initial_std(
            cfg.horizon,
            xyz_std=cfg.maxnorm if cfg.xyz_std is None else cfg.xyz_std,
            gripper_std=cfg.gripper_std,
            rotation_std=cfg.rotation_maxnorm if cfg.rotation_std is None else cfg.rotation_std,
            device=device,
        )
        noise = torch.randn(cfg.restarts, cfg.horizon, space.size, generator=generator, device=device)
        noise[0] = 0.0
        return space.project(mean + std * noise)

    def plan(
        self,
        world_model: WorldModelLike,
        z0: Tensor,
        s0: Tensor,
        z_goal: Tensor,
        *,
        context_actions: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Plan:
        """z0 ``[1, T0, N, D]``, s0 ``[1, T0, A]``, z_goal ``[1, 1, N, D]`` -> :class:`Plan`.

        ``history[i]``: ``energies [R]`` of the restarts before step i, ``best_energy``.
        """
        check_inputs(z0, s0, z_goal, context_actions, bind_space(self, world_model).robot)
        check_generator(generator, z0.device)
        cfg, space = self.config, self.space
        kw = dict(context_actions=context_actions, energy=cfg.energy, dtype=cfg.dtype)
        x = self._initial(z0.device, generator).requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=cfg.lr, betas=cfg.betas)
        best_energy, best = math.inf, x.detach()[0].clone()
        history = []
        with torch.enable_grad():
            for i in range(cfg.iterations + 1):
                energies = rollout_energy(world_model, z0.detach(), s0.detach(), z_goal.detach(), space.to_full(x), **kw)
                e = energies.detach()
                j = int(e.argmin())
                if e[j] < best_energy:
                    best_energy, best = float(e[j]), x.detach()[j].clone()
                history.append({"energies": e, "best_energy": best_energy})
                if i == cfg.iterations:
                    break
                # grad w.r.t. the actions only: the world model's parameters get no .grad
                (x.grad,) = torch.autograd.grad(energies.sum(), [x])
                optimizer.step()
                with torch.no_grad():
                    x.copy_(space.project(x))
        self._previous = best
        return Plan(actions=space.to_full(best), energy=best_energy, history=history)
