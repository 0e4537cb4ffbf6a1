"""Self-training's effect: a small labelled set plus an unlabelled pool whose true labels are kept aside.

    .venv/bin/python bench/bench_self_training.py [--seeds 5] [--labelled 0.25] [--folds 5] [--data CSV]

For each seed the demo dataset (or --data, a CSV with path,label[,group]) is split by group (an emoji's vendor
variants stay together) into a labelled share (stratified by class) and a pool; the pool is written as a CSV
whose `label` column is the known truth (never used for training, only to score pseudo-labels). A head-mode
`remedies --remedies self-training` experiment trains the baseline on the labelled share (folds only, no test
split: the demo's smallest class has too few groups for both, and the effects are fold-paired on validation),
the pool is added to the baseline (`train_cli.py pool`'s build_pool) and the experiment resumed, so
self-training runs exactly as a user runs it. Printed: per seed, validation balanced accuracy of the
baseline and of self-training (mean over folds) and their fold-paired difference with its 95% interval; over
seeds, the mean difference and its 95% t interval; pseudo-label counts and accuracy per class, over all seeds
and folds. ImageNet weights must be cached (python train_cli.py weights); features come from the cache.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from core.config import DEMO_DATA, RunConfig  # noqa: E402
from core.store import run_store  # noqa: E402


def quiet(_: str) -> None:
    pass


def split_labelled(data: Path, share: float, seed: int, folder: Path, min_groups: int) -> tuple[Path, Path]:
    """(labelled CSV, pool CSV with the true labels): whole groups drawn per class until `share` of it, and at
    least `min_groups` groups (a fold needs one of each class)."""
    table = pd.read_csv(data)
    table["path"] = [str((data.parent / p).resolve()) for p in table.path]
    if "group" not in table.columns:
        table["group"] = table.path
    rng = np.random.default_rng(seed)
    chosen = []
    for _, rows in table.groupby("label"):
        groups = np.array(rows.group.unique(), dtype=object)
        rng.shuffle(groups)
        sizes = rows.groupby("group").size().loc[groups].cumsum()
        chosen += list(groups[: max(min_groups, int(np.searchsorted(sizes.to_numpy(), share * len(rows))) + 1)])
    labelled = table[table.group.isin(chosen)]
    pool = table[~table.group.isin(chosen)]
    folder.mkdir(parents=True)
    labelled[["path", "label", "group"]].to_csv(folder / "labelled.csv", index=False)
    pool[["path", "label"]].to_csv(folder / "pool.csv", index=False)
    return folder / "labelled.csv", folder / "pool.csv"


def one_seed(data: Path, share: float, seed: int, folds: int, root: Path) -> dict:
    from core.delivery.pool import build_pool
    from core.experiments.remedies import remedy_named
    from core.experiments.remedy_runs import resume_remedies, run_remedies

    labelled, pool = split_labelled(data, share, seed, root / f"seed{seed}", folds + 1)
    cfg = RunConfig(data=str(labelled), train_mode="head", folds=folds, test_size=0.0, seed=seed,
                    runs_dir=str(root / "runs"), name=f"seed{seed}")
    folder = run_remedies(cfg, [remedy_named("self-training")], log=quiet)
    document = run_store.read_json(folder / "experiment.json")
    baseline = Path(cfg.runs_dir) / document["baseline"]
    record = build_pool(baseline, [str(pool)])
    resume_remedies(Path(cfg.runs_dir), document["experiment_id"], log=quiet)
    document = run_store.read_json(folder / "experiment.json")
    effects = pd.read_parquet(folder / "effects.parquet")
    overall = effects[(effects.remedy == "self-training") & (effects.metric == "balanced_accuracy")].iloc[0]
    run = Path(cfg.runs_dir) / document["runs"][0]["run_id"]
    per_class, _ = run_store.read_self_training(run)
    return {"seed": seed, "labelled": len(pd.read_csv(labelled)), "pool": record["n_images"],
            "baseline": overall.baseline_mean, "self_training": overall.remedy_mean,
            "difference": overall.difference_mean, "low": overall.ci_low, "high": overall.ci_high,
            "verdict": overall.verdict, "per_class": per_class.assign(seed=seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labelled", type=float, default=0.25, help="labelled share of each class")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEMO_DATA)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}; data {args.data}; "
          f"labelled share {args.labelled}; head mode, {args.folds} folds; seeds 0..{args.seeds - 1}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            started = time.perf_counter()
            result = one_seed(args.data, args.labelled, seed, args.folds, Path(tmp))
            results.append(result)
            print(f"seed {seed}: {result['labelled']} labelled, {result['pool']} pool images; validation balanced "
                  f"accuracy baseline {100 * result['baseline']:.1f}%, self-training "
                  f"{100 * result['self_training']:.1f}%, difference {100 * result['difference']:+.1f} pts "
                  f"[{100 * result['low']:+.1f}, {100 * result['high']:+.1f}] ({result['verdict']}; "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)
    differences = np.array([r["difference"] for r in results])
    mean = differences.mean()
    half = (stats.t.ppf(0.975, len(differences) - 1) * differences.std(ddof=1) / np.sqrt(len(differences))
            if len(differences) > 1 else float("nan"))
    print(f"over {len(results)} seeds: baseline {100 * np.mean([r['baseline'] for r in results]):.1f}%, "
          f"self-training {100 * np.mean([r['self_training'] for r in results]):.1f}%; mean fold-paired "
          f"difference {100 * mean:+.1f} pts, 95% t interval over seeds "
          f"[{100 * (mean - half):+.1f}, {100 * (mean + half):+.1f}]")
    per_class = pd.concat([r["per_class"] for r in results])
    total = per_class.groupby("class")[["pseudo_labels", "known", "correct"]].sum()
    print("pseudo-labels per class (all seeds and folds), accuracy against the pool's true labels:")
    for name, row in total.iterrows():
        accuracy = f"{100 * row.correct / row.known:.1f}%" if row.known else "n/a"
        print(f"  {name:<28} {int(row.pseudo_labels):>5} pseudo-labels, accuracy {accuracy}")
    print(f"  {'all':<28} {int(total.pseudo_labels.sum()):>5} pseudo-labels, accuracy "
          f"{100 * total.correct.sum() / max(1, total.known.sum()):.1f}%")


if __name__ == "__main__":
    main()
