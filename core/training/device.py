"""Where and how training runs: the device, its description, the fold jobs' thread count, the train mode
`auto` resolves to on it, and which of CUDA's fast paths a fold takes."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.config import FAST_PATHS, parse_fast_paths

COMPILE_MIN_IMAGES = 800_000  # ~60 s of compilation pays back at ~1.4x faster steps after about this many


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def fold_threads(requested: int, mode: str, trains_backbone: bool = False) -> int:
    """The torch thread count of every fold job; 0 chooses. A head fold multiplies matrices of a few thousand
    numbers, where a second thread only waits, and spins while other processes hold the cores: the demo's
    head folds took 0.5-2 s with one thread against 7-26 s with two on a loaded 2-core machine, with the same
    metrics (bench/bench_warm.py). Finetuning, and a head fold whose backbone first trains self-supervised
    (`trains_backbone`), keep torch's default for this machine."""
    if requested:
        return requested
    return 1 if mode == "head" and not trains_backbone else torch.get_num_threads()


def resolve_train_mode(requested: str, device: torch.device) -> tuple[str, str]:
    if requested != "auto":
        return requested, f"--train-mode {requested} was asked for"
    if device.type == "cuda":
        return "finetune", "auto: CUDA is available, so all layers are fine-tuned"
    return "head", "auto: no CUDA device, so the backbone is frozen and only the head is trained on cached features"


@dataclass(frozen=True)
class FastPaths:
    """CUDA's speed-ups: torch.compile of the training forward, bf16 autocast, channels_last weights."""
    compile: bool = False
    bf16: bool = False
    channels_last: bool = False

    def describe(self) -> str:
        names = {"compile": "network compiled", "bf16": "bf16 autocast", "channels_last": "channels_last"}
        return ", ".join(names[name] for name in FAST_PATHS if getattr(self, name))


def choose_fast_paths(device: torch.device, compile_setting: str = "auto", cpu_setting: str = "",
                      planned_images: int = 0) -> FastPaths:
    """On CUDA: bf16 and channels_last always; compile when --compile on, or auto and the run is long enough
    to amortise it. On the CPU: only those `cpu_setting` names (inductor compiles for the CPU, autocast takes
    bfloat16 there), so the suite runs the CUDA branches where no GPU is; --compile off still wins."""
    if device.type == "cuda":
        compile_model = compile_setting == "on" or (compile_setting == "auto" and planned_images >= COMPILE_MIN_IMAGES)
        return FastPaths(compile=compile_model, bf16=True, channels_last=True)
    asked = parse_fast_paths(cpu_setting)
    return FastPaths(compile="compile" in asked and compile_setting != "off", bf16="bf16" in asked,
                     channels_last="channels_last" in asked)
