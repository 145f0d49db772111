"""Evaluation: the episode runner, success-rate cells with their statistics, replay of recorded episodes, energy
landscapes, and figures.

    from vjepa2_ac.eval import evaluate, results_table
    cells = evaluate(wm, planning, tasks=["reach"], episodes=10, seed=1000, baselines=["random"])
    print(results_table(cells))
"""

from vjepa2_ac.eval.episode import EpisodeResult, RandomPolicy, run_episode, task_distance
from vjepa2_ac.eval.landscape import Landscape, energy_landscape, landscape_actions
from vjepa2_ac.eval.offline import OfflineConfig, OfflineResult, evaluate_offline
from vjepa2_ac.eval.replay import load_recorded_cells, replay_recorded
from vjepa2_ac.eval.stats import CellResult, results_table, wilson_interval
from vjepa2_ac.eval.suite import BASELINES, POLICIES, evaluate, software_versions, untrained_world_model

__all__ = ["BASELINES", "POLICIES", "CellResult", "EpisodeResult", "Landscape", "OfflineConfig", "OfflineResult",
           "RandomPolicy", "energy_landscape", "evaluate", "evaluate_offline", "landscape_actions",
           "load_recorded_cells", "replay_recorded", "results_table", "run_episode", "software_versions",
           "task_distance", "untrained_world_model", "wilson_interval"]
