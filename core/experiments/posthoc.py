"""A remedy that trains nothing: post hoc logit adjustment applied to the baseline's trained fold models.

The remedy's run is an ordinary run (its own run.json, samples and splits, assembled and diagnosed as any other);
only its folds/fold{k}/ are derived from the baseline's instead of trained: the same history, the checkpoint with
the head's bias shifted by -tau * log(prior of the fold's training part), and every stored probability adjusted
the same way (softmax(log p + offset) is exactly the adjusted head's output). Trained afresh with the setting,
a fold would end the same (core.training.fold_job applies the setting after training), only slower.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.errors import UserError
from core.evaluate import prediction_table, prob_column
from core.store import run_store as store
from core.training.fold_job import done_folds
from core.training.logit_adjust import adjust_probabilities, log_prior, posthoc_offset
from core.training.run_inputs import fold_parts, load_run_inputs

HEAD_BIAS = {"head": "bias", "model": "head.bias"}   # checkpoint key -> its head's bias (head / finetune mode)


def _sample_map(base: pd.DataFrame, samples: pd.DataFrame, baseline_dir: Path) -> np.ndarray:
    """For each sample of the new run, its sample_id in the baseline (matched by path, same split and fold)."""
    joined = samples[["path", "split", "fold"]].merge(base[["path", "split", "fold", "sample_id"]],
                                                      on="path", how="left", suffixes=("", "_base"))
    same = (joined.split == joined.split_base) & (joined.fold.fillna(-1) == joined.fold_base.fillna(-1))
    if joined.sample_id.isna().any() or not same.all():
        raise UserError(f"{baseline_dir}: its images or splits differ from the remedy run's, so its fold models "
                        "cannot be reused; train the remedy instead")
    return joined.sample_id.to_numpy(dtype=np.int64)


def derive_posthoc_folds(baseline_dir: Path, run_dir: Path) -> list[int]:
    """Write every fold of `run_dir` not yet done from the baseline's same fold, adjusted post hoc by the
    difference of the two runs' `logit_adjust_posthoc`; returns the folds written."""
    baseline_dir, run_dir = Path(baseline_dir), Path(run_dir)
    info, cfg, samples = load_run_inputs(run_dir)
    base_info, base_cfg, base_samples = load_run_inputs(baseline_dir)
    if base_info["classes"] != info["classes"] or base_info["train_mode"] != info["train_mode"]:
        raise UserError(f"{baseline_dir}: other classes or training mode than {run_dir.name}; train the remedy")
    classes, tau = info["classes"], cfg.logit_adjust_posthoc - base_cfg.logit_adjust_posthoc
    base_ids = _sample_map(base_samples, samples, baseline_dir)
    new_id = pd.Series(np.arange(len(samples), dtype=np.int64), index=base_ids)
    labels = samples.label_index.to_numpy()
    done = set(done_folds(run_dir, cfg.folds))
    written = []
    for k in done_folds(baseline_dir, cfg.folds):
        if k in done:
            continue
        started = time.perf_counter()
        source = store.fold_dir(baseline_dir, k)
        offset = posthoc_offset(log_prior(labels[fold_parts(samples, k)["train"]], len(classes)), tau)
        rows = pd.read_parquet(source / "predictions.parquet")
        rows = rows[rows.sample_id.isin(new_id.index)]
        probs = adjust_probabilities(rows[[prob_column(c) for c in classes]].to_numpy(), offset.numpy())
        ids = new_id.loc[rows.sample_id].to_numpy()
        predictions = pd.concat([prediction_table(ids[mask], labels[ids[mask]], probs[mask], f"fold{k}", k, role,
                                                  classes)
                                 for role in rows.role.unique() for mask in [(rows.role == role).to_numpy()]],
                                ignore_index=True)
        checkpoint = torch.load(source / "model.pt", map_location="cpu", weights_only=True)
        for key, bias in HEAD_BIAS.items():
            if key in checkpoint:
                checkpoint[key][bias] = checkpoint[key][bias] + offset.to(checkpoint[key][bias].dtype)
        summary = {**store.read_json(source / "fold.json"),
                   "derived_from": {"run": baseline_dir.name, "fold": k, "logit_adjust_posthoc": tau}}
        with store.atomic_dir(store.fold_dir(run_dir, k)) as tmp:
            store.write_parquet(tmp / "predictions.parquet", predictions)
            store.write_parquet(tmp / "history.parquet", pd.read_parquet(source / "history.parquet"))
            torch.save(checkpoint, tmp / "model.pt")
            base_embedding = store.embedding_path(baseline_dir, f"fold{k}")
            if base_embedding.exists():   # finetune mode: the fold network's space, in this run's sample order
                store.write_array(store.embedding_path(run_dir, f"fold{k}"), np.load(base_embedding)[base_ids])
            summary["seconds"] = round(time.perf_counter() - started, 2)
            store.write_json(tmp / "fold.json", summary)
        written.append(k)
    return written
