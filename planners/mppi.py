"""Model-predictive path integral control (MPPI): a softmax-weighted average of perturbed action sequences.

Per iteration: ``a_i = mean + std * eps_i`` (``eps ~ N(0, I)``, constrained), energies ``E_i``, weights
``w = softmax(-(E - min E) / (temperature * scale))`` with ``scale = max E - min E`` when
``normalize_energy`` (a unit-free temperature) else 1; ``mean <- (1 - momentum) * sum_i w_i a_i +
momentum * mean``; ``std <- std * std_decay`` (annealing; 1 = classic MPPI).
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
class MPPIConfig(SearchConfig):
    """MPPI settings (shared fields: :class:`planners.common.SearchConfig`).

    samples, iterations: perturbed sequences per iteration, number of iterations.
    temperature: softmax temperature (relative to the energy spread when ``normalize_energy``).
    xyz_std, rotation_std, gripper_std: perturbation std (``None``: half of ``maxnorm`` / ``rotation_maxnorm``).
    std_decay: the std is multiplied by this after each iteration.
    momentum: weight of the old mean in the update.
    include_mean: evaluate the current mean as sample 0 (the weighted mean never gets worse than no change).
    """

    samples: int = 400
    iterations: int = 10
    temperature: float = 0.05
    normalize_energy: bool = True
    xyz_std: float | None = None
    rotation_std: float | None = None
    gripper_std: float = 0.5
    std_decay: float = 0.7
    momentum: float = 0.0
    include_mean: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples < 1 or self.iterations < 1:
            raise ValueError(f"samples and iterations must be >= 1, got {self.samples=}, {self.iterations=}")
        _positive(temperature=self.temperature, gripper_std=self.gripper_std, std_decay=self.std_decay)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


class MPPI:
    """MPPI planner (``MPPI(MPPIConfig(horizon=2)).plan(wm, z0, s0, z_goal, generator=g)``)."""

    def __init__(self, config: MPPIConfig | None = None) -> None:
        self.config = config if config is not None else MPPIConfig()
        self.space = self.config.action_space()
        self._previous_mean: Tensor | None = None

    def reset(self) -> None:
        self._previous_mean = None

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

        ``history[i]``: ``mean``/``std`` ``[H, d]`` after iteration i, ``energies [S]``, ``weights [S]``.
        """
        check_inputs(z0, s0, z_goal, context_actions, bind_space(self, world_model).robot)
        check_generator(generator, z0.device)
        cfg, space, device = self.config, self.space, z0.device
        kw = dict(context_actions=context_actions, energy=cfg.energy, dtype=cfg.dtype, rescore=cfg.rescore)
        mean = space.initial_mean(cfg.horizon, device)
        if cfg.warm_start and self._previous_mean is not None:
            mean = shift_plan(self._previous_mean.to(device), mean)
        std = space.initial_std(
            cfg.horizon,
            xyz_std=cfg.maxnorm / 2 if cfg.xyz_std is None else cfg.xyz_std,
            gripper_std=cfg.gripper_std,
            rotation_std=cfg.rotation_maxnorm / 2 if cfg.rotation_std is None else cfg.rotation_std,
            device=device,
        )
        history = []
        with torch.no_grad():
            for _ in range(cfg.iterations):
                eps = torch.randn(cfg.samples, cfg.horizon, space.size, generator=generator, device=device)
                samples = mean + std * eps
                if cfg.include_mean:
                    samples[0] = mean
                samples = space.project(samples)
                energies = rollout_energy(world_model, z0, s0, z_goal, space.to_full(samples), **kw)
                shifted = energies - energies.min()
                scale = shifted.max().clamp_min(1e-12) if cfg.normalize_energy else 1.0
                weights = torch.softmax(-shifted / (cfg.temperature * scale), dim=0)
                update = torch.einsum("s,shd->hd", weights, samples)
                mean = space.project((1.0 - cfg.momentum) * update + cfg.momentum * mean)
                std = std * cfg.std_decay
                history.append({"mean": mean.clone(), "std": std.clone(), "energies": energies, "weights": weights})
            self._previous_mean = mean
            plan_actions = space.to_full(mean)
            energy = math.nan
            if cfg.evaluate_plan:
                energy = float(rollout_energy(world_model, z0, s0, z_goal, plan_actions[None], **kw)[0])
        return Plan(actions=plan_actions, energy=energy, history=history)
