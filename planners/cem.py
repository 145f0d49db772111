"""Cross-entropy method, batched over samples, in the released (``official``) and the ``paper`` setting.

Official mode reproduces ``cem`` of ``facebookresearch/vjepa2`` (``notebooks/utils/mpc_utils.py``) draw for
draw: per iteration and horizon step ``a = randn(S, d) * std[h] + mean[h]``, xyz clipped per axis to
``±maxnorm``, dg to ``±0.75``, fixed ``axis`` dims, rotation deltas 0, dg forced to 1 from ``close_gripper``
on; the ``topk`` lowest energies give ``mean``/unbiased ``std``; the "momentum" weights the *old* value:
``mean <- (1 - m) * mean_topk + m * mean``. The result is the final mean with ``dg = 0`` where ``|dg| < 0.25``.
The whole sample batch goes through one ``world_model.rollout`` call per iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

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
class CEMConfig(SearchConfig):
    """CEM settings; the defaults are the released ``WorldModel``'s (use :meth:`official` / :meth:`paper`).

    samples, topk, iterations: population size, number of elites, CEM iterations.
    momentum_mean, momentum_std (xyz and rotation), momentum_mean_gripper, momentum_std_gripper: weight of
        the *old* mean/std in the update (released semantics).
    xyz_std, rotation_std, gripper_std: initial standard deviations (``None``: ``maxnorm`` /
        ``rotation_maxnorm``; released gripper 1.0).
    gripper_round: the returned dg is set to 0 where ``|dg| <`` this (released 0.25; ``None`` = off).
    """

    horizon: int = 2
    samples: int = 400
    topk: int = 10
    iterations: int = 10
    momentum_mean: float = 0.15
    momentum_std: float = 0.15
    momentum_mean_gripper: float = 0.15
    momentum_std_gripper: float = 0.15
    xyz_std: float | None = None
    rotation_std: float | None = None
    gripper_std: float = 1.0
    gripper_round: float | None = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples < 2 or not 2 <= self.topk <= self.samples:
            raise ValueError(f"need samples >= topk >= 2 (unbiased std of the elites), got {self.samples=}, {self.topk=}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        for name in ("momentum_mean", "momentum_std", "momentum_mean_gripper", "momentum_std_gripper"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        _positive(gripper_std=self.gripper_std)
        for name in ("xyz_std", "rotation_std"):
            if getattr(self, name) is not None:
                _positive(**{name: getattr(self, name)})

    @classmethod
    def official(cls, **overrides) -> CEMConfig:
        """Released ``WorldModel`` defaults: 400 samples, top-10, 10 iterations, horizon 2, box ±0.05,
        momenta 0.15, xyz + gripper only, dg rounded below 0.25."""
        return cls(**_known(cls, overrides))

    @classmethod
    def paper(cls, **overrides) -> CEMConfig:
        """Paper setting (V-JEPA 2, §4 / App. B): 800 samples, top-10, 10 iterations, horizon 1, xyz in the
        L1 ball of radius 0.075 (Euclidean projection); other fields as :meth:`official`."""
        base = dict(samples=800, topk=10, iterations=10, horizon=1, maxnorm=0.075, constraint="l1_ball")
        return cls(**_known(cls, {**base, **overrides}))


def _known(cls: type, overrides: dict) -> dict:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(names)}")
    return overrides


class CEM:
    """Cross-entropy method planner (``CEM(CEMConfig.official()).plan(wm, z0, s0, z_goal, generator=g)``)."""

    def __init__(self, config: CEMConfig | None = None) -> None:
        self.config = config if config is not None else CEMConfig.official()
        self.space = self.config.action_space()
        self._previous_mean: Tensor | None = None

    def reset(self) -> None:
        self._previous_mean = None

    def initial_distribution(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """Initial ``mean``, ``std`` ``[H, d]`` (warm start applied)."""
        cfg, space = self.config, self.space
        mean = space.initial_mean(cfg.horizon, device)
        std = space.initial_std(
            cfg.horizon,
            xyz_std=cfg.maxnorm if cfg.xyz_std is None else cfg.xyz_std,
            gripper_std=cfg.gripper_std,
            rotation_std=cfg.rotation_maxnorm if cfg.rotation_std is None else cfg.rotation_std,
            device=device,
        )
        if cfg.warm_start and self._previous_mean is not None:
            mean = shift_plan(self._previous_mean.to(device), mean)
        return mean, std

    def sample(self, mean: Tensor, std: Tensor, generator: torch.Generator | None) -> Tensor:
        """Constrained action samples ``[S, H, A]``; one ``randn(S, d)`` draw per horizon step (released order)."""
        s, d = self.config.samples, self.space.size
        steps = [
            torch.randn(s, d, generator=generator, device=mean.device) * std[h] + mean[h] for h in range(mean.shape[0])
        ]
        return self.space.to_full(self.space.project(torch.stack(steps, dim=1)))

    def update(self, mean: Tensor, std: Tensor, elites: Tensor) -> tuple[Tensor, Tensor]:
        """New ``mean``, ``std`` ``[H, d]`` from elite actions ``[K, H, A]`` (old values weighted by momentum)."""
        cfg, dims = self.config, list(self.space.dims)
        elite_mean, elite_std = elites.mean(dim=0)[..., dims], elites.std(dim=0)[..., dims]
        new_mean, new_std = [], []
        for name, sl in self.space.groups():
            m_mean, m_std = (
                (cfg.momentum_mean_gripper, cfg.momentum_std_gripper)
                if name == "gripper"
                else (cfg.momentum_mean, cfg.momentum_std)
            )
            new_mean.append(elite_mean[..., sl] * (1.0 - m_mean) + mean[..., sl] * m_mean)
            new_std.append(elite_std[..., sl] * (1.0 - m_std) + std[..., sl] * m_std)
        return torch.cat(new_mean, dim=-1), torch.cat(new_std, dim=-1)

    def final_actions(self, mean: Tensor) -> Tensor:
        """``[H, A]``: the mean, unsearched dims 0, small gripper deltas rounded to 0 (released)."""
        robot = self.space.robot
        full = mean.new_zeros(mean.shape[0], robot.dim)
        full[:, list(self.space.dims)] = mean
        if self.config.gripper_round is not None and robot.gripper is not None:
            g = full[:, robot.gripper]
            full[:, robot.gripper] = torch.where(g.abs() < self.config.gripper_round, torch.zeros_like(g), g)
        return full

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
        """z0 ``[1, T0, N, D]``, s0 ``[1, T0, A]``, z_goal ``[1, 1, N, D]`` -> :class:`Plan` (actions ``[H, A]``).

        ``history[i]``: ``mean``/``std`` ``[H, d]`` after iteration i, ``energies [S]``, ``elite_energies [K]``.
        """
        check_inputs(z0, s0, z_goal, context_actions, bind_space(self, world_model).robot)
        check_generator(generator, z0.device)
        cfg = self.config
        kw = dict(context_actions=context_actions, energy=cfg.energy, dtype=cfg.dtype, rescore=cfg.rescore)
        mean, std = self.initial_distribution(z0.device)
        history = []
        with torch.no_grad():
            for _ in range(cfg.iterations):
                actions = self.sample(mean, std, generator)
                energies = rollout_energy(world_model, z0, s0, z_goal, actions, **kw)
                top = energies.topk(cfg.topk, largest=False).indices
                mean, std = self.update(mean, std, actions[top])
                history.append(
                    {"mean": mean.clone(), "std": std.clone(), "energies": energies, "elite_energies": energies[top]}
                )
            self._previous_mean = mean
            plan_actions = self.final_actions(mean)
            energy = math.nan
            if cfg.evaluate_plan:
                energy = float(rollout_energy(world_model, z0, s0, z_goal, plan_actions[None], **kw)[0])
        return Plan(actions=plan_actions, energy=energy, history=history)
