"""Where and how training runs: the device, its description, the fold jobs' thread count, and the train mode
`auto` resolves to on it."""
from __future__ import annotations

import torch


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def fold_threads(requested: int, mode: str) -> int:
    """The torch thread count of every fold job; 0 chooses. A head fold multiplies matrices of a few thousand
    numbers, where a second thread only waits, and spins while other processes hold the cores: the demo's
    head folds took 0.5-2 s with one thread against 7-26 s with two on a loaded 2-core machine, with the same
    metrics (bench/bench_warm.py). Finetuning keeps torch's default for this machine."""
    if requested:
        return requested
    return 1 if mode == "head" else torch.get_num_threads()


def resolve_train_mode(requested: str, device: torch.device) -> tuple[str, str]:
    if requested != "auto":
        return requested, f"--train-mode {requested} was asked for"
    if device.type == "cuda":
        return "finetune", "auto: CUDA is available, so all layers are fine-tuned"
    return "head", "auto: no CUDA device, so the backbone is frozen and only the head is trained on cached features"
