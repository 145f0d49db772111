"""The ``vjepa2-ac`` entry point: every sub-command is wired and documents itself."""

import subprocess
import sys

import pytest

from vjepa2_ac.cli import COMMANDS, build_parser, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vjepa2-ac" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "vjepa2_ac.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("vjepa2-ac ")


@pytest.mark.parametrize("name", ["train", "pretrain-encoder", "encode-dataset", "demo", "eval"])
def test_threads_option_sets_torch_threads_or_refuses_bad_values(name, tmp_path):
    import torch

    from vjepa2_ac.commands.common import apply_threads

    required = {"train": ["--data", "d", "--out", "o"], "pretrain-encoder": ["--data", "d", "--out", "o"],
                "encode-dataset": ["--data", "d", "--encoder", "e", "--out", "o"], "demo": [], "eval": []}[name]
    before = torch.get_num_threads()
    try:
        apply_threads(build_parser().parse_args([name, *required, "--threads", "1"]))
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit, match="--threads must be >= 1, got 0"):
            apply_threads(build_parser().parse_args([name, *required, "--threads", "0"]))
    finally:
        torch.set_num_threads(before)
