"""A run's unlabelled pool: images without labels added to a finished run (`train_cli.py pool RUN_ID --add`),
and which of them to label next (`--budget N`).

The pool is read as the data is: every file decoded once (core.data.dataset.inspect_file, through
drift.readable_images), unreadable ones skipped with their reason, identical files (same sha256) joined into one
row, and a row whose content is already one of the run's labelled images noted. Each distinct image gets the run's
pretrained features through the content-addressed feature cache (drift.new_embeddings: the run's reference space,
the space of embeddings/backbone.npy) and the fold ensemble's mean probabilities (core.delivery.predict: in head mode
the fold heads on those features, in finetune mode the fold networks on the images). Near-duplicates of labelled
images are marked with the diagnostics' rule (duplicates.near_duplicate_pairs: the calibrated centred-cosine cut
over labelled and pool images together). The whole pool/ folder is written in one rename (run_store.atomic_dir);
adding again keeps what is there and appends new contents. docs/run-format.md describes the files.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis.active_learning import pick
from core.analysis.diagnostics.duplicates import near_duplicate_pairs
from core.analysis.diagnostics.neighbours import centred_cosine
from core.analysis.diagnostics.thresholds import Thresholds
from core.analysis.drift import new_embeddings, readable_images
from core.config import PickSettings
from core.errors import UserError
from core.evaluate import prob_column
from core.store import run_store as store

TABLE_COLUMNS = ["pool_id", "path", "sha256", "copies", "known_label", "labelled_sample_id",
                 "near_labelled_sample_id", "near_similarity", "prediction", "confidence"]
PICK_COLUMNS = ["rank", "pool_id", "path", "sha256", "prediction", "confidence", "strategy", "score", "reason"]


# ---------------------------------------------------------------- files in

def list_inputs(inputs: list[str]) -> tuple[list[Path], dict[str, str]]:
    """(files, known label by resolved path): folders searched recursively; a .csv is a manifest whose `path`
    column (relative to the CSV's folder, or absolute) lists images; its optional `label` column is kept as
    `known_label` (the truth, for benchmarks; the pool stays unlabelled)."""
    from core.delivery.predict import collect_inputs
    files, known = [], {}
    for given in inputs:
        source = Path(given).expanduser()
        if source.is_file() and source.suffix.lower() == ".csv":
            try:
                table = pd.read_csv(source, dtype=str, keep_default_na=False)
            except Exception as exc:
                raise UserError(f"--add {given}: cannot read it as CSV ({exc}); expected a path column") from None
            if "path" not in table.columns:
                raise UserError(f"--add {given}: no path column (found: {', '.join(table.columns)}); give a CSV "
                                f"with a path column, or a folder of images")
            paths = [(source.resolve().parent / p).resolve() for p in table["path"]]
            files += paths
            if "label" in table.columns:
                known.update({str(p): label for p, label in zip(paths, table["label"]) if label})
        else:
            files += [p.resolve() for p in collect_inputs([given], "pool")]
    return files, known


def join_identical(paths: list[Path], shas: list[str]) -> pd.DataFrame:
    """One row per distinct content, first path kept, the other paths in `copies`."""
    frame = pd.DataFrame({"path": [str(p) for p in paths], "sha256": shas})
    joined = frame.groupby("sha256", sort=False)["path"].agg(list).reset_index()
    return pd.DataFrame({"path": joined["path"].str[0], "sha256": joined["sha256"],
                         "copies": joined["path"].str[1:]})


def with_new_copies(pooled: pd.DataFrame, joined: pd.DataFrame) -> pd.DataFrame:
    """`pooled` with the paths of `joined` (a `join_identical` table) whose content it already holds added to
    that row's `copies` (a path it lists already is not repeated)."""
    found = joined.set_index("sha256")
    copies = []
    for row in pooled.itertuples():
        listed = [row.path, *row.copies]
        more = ([found.at[row.sha256, "path"], *found.at[row.sha256, "copies"]] if row.sha256 in found.index
                else [])
        copies.append([*row.copies, *[p for p in dict.fromkeys(more) if p not in listed]])
    return pooled.assign(copies=copies)


# ---------------------------------------------------------------- the ensemble on the pool

def ensemble_probabilities(run_dir: Path, paths: list[str], features: np.ndarray) -> np.ndarray:
    """The fold ensemble's mean probabilities of these images (classes in run.json order)."""
    from core.delivery import predict
    ensemble = predict.load_ensemble(run_dir, ood=False)
    if ensemble.backbone is not None:   # head mode: the fold heads read the cached features
        return ensemble.head_probabilities(features)
    table = predict.predict_files(ensemble, [Path(p) for p in paths], {})
    return table[[prob_column(c) for c in ensemble.classes]].to_numpy(np.float32)


def near_labelled(labelled: np.ndarray, pool: np.ndarray,
                  th: Thresholds = Thresholds()) -> tuple[np.ndarray, np.ndarray, float]:
    """For each pool row: the labelled sample it is a near-duplicate of (-1: none) and their centred cosine, by
    the diagnostics' calibrated rule over both sets; and the cut used."""
    both = np.concatenate([labelled, pool]).astype(np.float32)
    n = len(labelled)
    partner, similarity = np.full(len(pool), -1, dtype=np.int64), np.full(len(pool), np.nan)
    if len(both) < 3:
        return partner, similarity, float("nan")
    pairs, cut = near_duplicate_pairs(both, th)
    a, b = pairs[:, 0], pairs[:, 1]
    across = (a < n) & (b >= n)   # pairs are ordered a < b, so a labelled image is always `a`
    a, b = a[across], b[across]
    cosine = centred_cosine(both, a, b) if len(a) else np.zeros(0)
    for labelled_id, pool_row, value in sorted(zip(a, b - n, cosine), key=lambda t: t[2]):   # the closest last
        partner[pool_row], similarity[pool_row] = labelled_id, value
    return partner, similarity, float(cut)


# ---------------------------------------------------------------- the pool, built and stored

def build_pool(run_dir: Path, inputs: list[str]) -> dict:
    """Add the images under `inputs` to the run's pool (created on first use) and store it; the pool.json
    record is returned."""
    run_dir = Path(run_dir)
    info = store.read_json(run_dir / store.RUN_JSON)
    labelled = store.read_embedding(run_dir, "backbone")
    if labelled is None or not info.get("folds_done"):
        raise UserError(f"run {run_dir.name} has no finished fold or no embeddings/backbone.npy yet; finish it "
                        f"with: python train_cli.py --resume {run_dir.name}")
    files, known = list_inputs(inputs)
    readable, shas, skipped = readable_images(files)
    old = store.read_pool(run_dir)
    new = join_identical(readable, shas)
    kept = None
    if old is not None:   # contents already pooled keep their row; a new path of one is another copy
        kept = with_new_copies(old.table, new)
        new = new[~new["sha256"].isin(set(old.table["sha256"]))].reset_index(drop=True)
    if old is None and new.empty:
        reason = f" ({skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
        raise UserError(f"pool: no readable image among {len(files)} files{reason}; give folders of images or a "
                        f"CSV with a path column")
    features = (new_embeddings(run_dir, [Path(p) for p in new["path"]], list(new["sha256"]))
                .astype(np.float16) if len(new) else np.zeros((0, labelled.shape[1]), np.float16))
    probabilities = (ensemble_probabilities(run_dir, list(new["path"]), features.astype(np.float32))
                     if len(new) else np.zeros((0, len(info["classes"])), np.float32))
    new["known_label"] = new["path"].map(known)
    table = new if kept is None else pd.concat([kept[new.columns], new], ignore_index=True)
    if old is not None:
        features = np.concatenate([old.features.astype(np.float16), features])
        probabilities = np.concatenate([old.probabilities, probabilities])
    table, cut = describe(table, run_dir, info, labelled, features, probabilities)
    record = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
              "inputs": (old.info["inputs"] if old else []) + list(inputs),
              "n_files": (old.info["n_files"] if old else 0) + len(files),
              "skipped": list({item["path"]: item for item in (old.info["skipped"] if old else []) + skipped}.values()),
              "n_images": len(table), "identical_to_labelled": int(table["labelled_sample_id"].notna().sum()),
              "near_labelled": int(table["near_labelled_sample_id"].notna().sum()),
              "near_duplicate_similarity": cut, "space": "backbone",
              "train_mode": info["train_mode"], "classes": list(info["classes"])}
    write_pool(run_dir, table, features, probabilities.astype(np.float32), record)
    return record


def describe(table: pd.DataFrame, run_dir: Path, info: dict, labelled: np.ndarray, features: np.ndarray,
             probabilities: np.ndarray) -> tuple[pd.DataFrame, float]:
    """The pool table with its derived columns, recomputed over the whole pool (ids, what is already labelled,
    the ensemble's prediction), and the near-duplicate cut used."""
    samples = store.read_table(run_dir, "samples")
    by_sha = samples.drop_duplicates("sha256").set_index("sha256")["sample_id"]
    partner, similarity, cut = near_labelled(labelled.astype(np.float32), features.astype(np.float32))
    table = table.reset_index(drop=True).assign(
        pool_id=np.arange(len(table)),
        labelled_sample_id=table["sha256"].map(by_sha).astype("Int64"),
        near_labelled_sample_id=pd.array(np.where(partner >= 0, partner, None), dtype="Int64"),
        near_similarity=similarity,
        prediction=np.asarray(info["classes"], dtype=object)[probabilities.argmax(axis=1)] if len(table) else [],
        confidence=probabilities.max(axis=1) if len(table) else [])
    table["known_label"] = table["known_label"].astype("string")
    return table[TABLE_COLUMNS], cut


def write_pool(run_dir: Path, table: pd.DataFrame, features: np.ndarray, probabilities: np.ndarray,
               record: dict) -> None:
    """pool/ in one rename: readers see the old pool or the new one (any old picks go with the old)."""
    with store.atomic_dir(Path(run_dir) / store.POOL_DIR) as folder:
        store.write_parquet(folder / store.POOL_FILES["table"], table)
        store.write_array(folder / store.POOL_FILES["features"], features)
        store.write_array(folder / store.POOL_FILES["probabilities"], probabilities)
        store.write_json(folder / store.POOL_FILES["info"], record)


# ---------------------------------------------------------------- which to label next

def require_pool(run_dir: Path) -> store.Pool:
    pool = store.read_pool(run_dir)
    if pool is None:
        name = Path(run_dir).name
        raise UserError(f"run {name} has no unlabelled pool yet; add one with: "
                        f"python train_cli.py pool {name} --add DIR_OR_CSV")
    return pool


def rank_pool(run_dir: Path, budget: int, strategy: str = "auto",
              settings: PickSettings = PickSettings()) -> pd.DataFrame:
    """The `budget` pool images to label next, best first (PICK_COLUMNS), by `strategy`; pool images identical
    to or near-duplicates of labelled images are never picked."""
    pool = require_pool(run_dir)
    labelled = store.read_embedding(Path(run_dir), "backbone").astype(np.float32)
    table = pool.table
    eligible = (table["labelled_sample_id"].isna() & table["near_labelled_sample_id"].isna()).to_numpy()
    used, picks = pick(labelled, pool.features, pool.probabilities, budget, eligible, strategy,
                       len(pool.info["classes"]), settings)
    chosen = table.iloc[picks["row"].to_numpy()].reset_index(drop=True)
    return chosen.assign(rank=np.arange(1, len(chosen) + 1), strategy=used, score=picks["score"].to_numpy(),
                         reason=picks["reason"].to_numpy())[PICK_COLUMNS]


def write_picks(run_dir: Path, picks: pd.DataFrame) -> Path:
    """pool/picks.parquet (atomic): the dashboard's gallery of the last ranking."""
    target = store.pool_path(run_dir, "picks")
    store.write_parquet(target, picks)
    return target
