"""What tune prints: the metric as a percentage, the suggested command with its floats rounded."""
from core.config import RunConfig
from core.experiments.tuning import format_best, suggested_command


def test_the_suggested_command_rounds_the_learning_rate_to_three_significant_digits():
    command = suggested_command(RunConfig(data="data/x"), {"lr": 0.0022881136684755237, "weight_decay": 1e-4})
    assert "--lr 0.00229" in command and "0.0022881" not in command
    assert "--name best" in command


def test_the_best_trial_reads_in_percentages():
    best = {"trial": 3, "value": 0.86436, "params": {"lr": 0.0022881136684755237}, "trial_run_id": "r1",
            "test_run_id": "r2", "command": "python train_cli.py --lr 0.00229",
            "test": {"label": "test split, best trial only", "ensemble": 0.7512, "fold_mean": 0.74}}
    text = format_best(best, "balanced_accuracy")
    assert text.startswith("best trial 3: validation balanced accuracy 86.4% (mean over folds;")
    assert "settings: {'lr': 0.00229}" in text
    assert "ensemble balanced accuracy 75.1% (run r2)" in text
