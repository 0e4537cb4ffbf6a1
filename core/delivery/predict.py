"""A run's fold models put to use: loaded once, they classify image files or uploaded bytes as an ensemble.

The ensemble is the run's test ensemble (docs/run-format.md): the mean of the fold models' softmax
probabilities. Images are decoded as the scan decodes them and go through the run's evaluation transform
(resize, centre crop, ImageNet normalisation). `train_cli.py predict` and the HTTP server (core/delivery/serve.py)
both use this module. Each image also gets an out-of-distribution score (core/analysis/ood.py): its distance to the
run's training images in the features the models read (computed by the same forward pass), flagged above the
threshold calibrated on held-out images.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from core.analysis.confidence import Confidence
from core.analysis.ood import OodReference, load_reference, serving_spaces
from core.data.dataset import decode_bytes, failure_reason
from core.errors import UserError
from core.evaluate import prob_column
from core.store import run_store as store
from core.training.device import pick_device
from core.training.features import eval_transform, inference_batch_size
from core.training.fold_job import done_folds, load_fold_model
from core.training.preprocessing import Preprocessing, recorded_preprocessing
from core.training.run_inputs import shared_backbone
from core.training.weights import recorded_backbone


@dataclass
class Ensemble:
    """The fold models of one run, ready to classify images through its input recipe."""
    run_id: str
    info: dict                   # the run's run.json
    classes: list[str]
    folds: list[int]
    prep: Preprocessing          # the run's recorded input recipe (crop size, resize, normalisation)
    device: torch.device
    backbone: nn.Module | None   # head mode: the frozen backbone every fold's head shares
    models: list[nn.Module]      # head mode: one linear head per fold; finetune: one whole network per fold
    ood: OodReference | None = None      # the training images in the models' feature spaces; None: no OOD score

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor, tta: bool = False,
                      embeddings: list[dict[str, np.ndarray]] | None = None) -> np.ndarray:
        """Mean softmax probability over the fold models (and, with `tta`, over the image and its mirror).
        `embeddings`, when given, gets the features of the images (not their mirrors) in each space of the OOD
        reference appended, as computed on the way to the probabilities: in head mode the backbone's features the
        heads read ("backbone"), in finetune mode each fold network's own ("fold{k}")."""
        views = [images, images.flip(-1)] if tta else [images]
        total = torch.zeros(len(images), len(self.classes))
        for view in views:
            inputs = view.to(self.device)
            collected = {} if embeddings is not None and view is images else None
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                if self.backbone is not None:
                    # The heads were trained and evaluated on features stored as float16 (backbone.npy).
                    inputs = self.backbone(inputs).half().float()
                    if collected is not None:
                        collected["backbone"] = inputs.cpu().numpy()
                for fold, model in zip(self.folds, self.models):
                    if self.backbone is None:   # finetune: a whole network, its features kept on the way
                        features = model.backbone(inputs)
                        if collected is not None:
                            collected[f"fold{fold}"] = features.float().cpu().numpy()
                        logits = model.head(features)
                    else:
                        logits = model(inputs)
                    total += torch.softmax(logits.float(), 1).cpu()
            if collected is not None:
                embeddings.append(collected)
        return (total / (len(self.models) * len(views))).numpy()

    @torch.inference_mode()
    def head_probabilities(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Head mode: mean softmax probability of the fold heads on pretrained features already computed (the
        run's reference space, e.g. from the feature cache), rounded through float16 as the heads were trained."""
        chunks = []
        for start in range(0, len(features), batch_size):
            inputs = torch.from_numpy(np.asarray(features[start:start + batch_size], dtype=np.float16)
                                      .astype(np.float32)).to(self.device)
            total = sum(torch.softmax(model(inputs).float(), 1).cpu() for model in self.models)
            chunks.append((total / len(self.models)).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)), dtype=np.float32)


def load_ensemble(run_dir: Path, device: torch.device | None = None, ood: bool = True) -> Ensemble:
    """Every finished fold model of the run, in eval mode on `device` (default: CUDA when available).

    Head mode rebuilds the frozen backbone from what run.json recorded (weights file checked by sha256; with
    `--weights none`, the seeded random initialisation, as a resumed run does) and loads each fold's head.
    With `ood` (and the models' features of the training images in the run: embeddings/backbone.npy in head mode,
    embeddings/fold{k}.npy in finetune mode), the OOD reference is built in those spaces.
    """
    run_dir = Path(run_dir)
    info = store.read_json(run_dir / store.RUN_JSON)
    folds = [k for k in done_folds(run_dir, int(info["config"]["folds"]))
             if (store.fold_dir(run_dir, k) / "model.pt").exists()]
    if not folds:
        raise UserError(f"run {run_dir.name} has no finished fold model yet (folds/fold*/model.pt); "
                        f"finish it with: python train_cli.py --resume {run_dir.name}")
    device = device or pick_device()
    backbone = None
    if shared_backbone(info):
        backbone = recorded_backbone(info).eval().to(device)
    models = [load_fold_model(run_dir, k).eval().to(device) for k in folds]
    reference = load_reference(run_dir, serving_spaces(info, folds)) if ood else None
    return Ensemble(run_id=run_dir.name, info=info, classes=list(info["classes"]), folds=folds,
                    prep=recorded_preprocessing(info), device=device, backbone=backbone, models=models,
                    ood=reference)


# ---------------------------------------------------------------- images in, probabilities out

def batch_size_for(ensemble: Ensemble) -> int:
    return inference_batch_size(int(ensemble.info["config"]["batch_size"]), ensemble.device)


def preprocess(ensemble: Ensemble, image: Image.Image) -> torch.Tensor:
    """The model input of one decoded RGB image: the run's evaluation transform."""
    return eval_transform(ensemble.prep)(image)


def classify_inputs(ensemble: Ensemble, inputs: list[torch.Tensor], tta: bool = False,
                    batch_size: int | None = None, embeddings: list[dict[str, np.ndarray]] | None = None) -> np.ndarray:
    """Probabilities [len(inputs), n_classes] of preprocessed images, in batches (`embeddings`: as
    `Ensemble.probabilities`)."""
    size = batch_size or batch_size_for(ensemble)
    chunks = [ensemble.probabilities(torch.stack(inputs[start:start + size]), tta, embeddings)
              for start in range(0, len(inputs), size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(ensemble.classes)), dtype=np.float32)


def classify(ensemble: Ensemble, images: list[Image.Image], tta: bool = False,
             batch_size: int | None = None, embeddings: list[dict[str, np.ndarray]] | None = None) -> np.ndarray:
    """Probabilities [len(images), n_classes] of decoded RGB images, in batches."""
    return classify_inputs(ensemble, [preprocess(ensemble, image) for image in images], tta, batch_size, embeddings)


def ood_scores(ensemble: Ensemble, embeddings: list[dict[str, np.ndarray]]) -> np.ndarray | None:
    """The OOD score of each image whose features `probabilities` collected, batch after batch; None without a
    reference."""
    if ensemble.ood is None:
        return None
    if not embeddings:
        return np.zeros(0)
    return ensemble.ood.scores({space: np.concatenate([batch[space] for batch in embeddings])
                                for space in ensemble.ood.indexes})


def add_ood_columns(table: pd.DataFrame, scores: np.ndarray | None, reference: OodReference | None) -> pd.DataFrame:
    """`ood_score`, `ood_threshold` and `out_of_distribution` (score above the threshold) for the readable rows
    of a `result_table` (`scores` in their order); empty where a row is unreadable or the run has no reference."""
    readable = table["error"].isna().to_numpy()
    table["ood_score"] = np.nan
    table["ood_threshold"] = np.nan
    table["out_of_distribution"] = pd.Series(pd.NA, index=table.index, dtype="boolean")
    if reference is not None and readable.any():
        table.loc[readable, "ood_score"] = scores
        table.loc[readable, "ood_threshold"] = reference.threshold
        table.loc[readable, "out_of_distribution"] = scores > reference.threshold
    return table


def decode(data: bytes, max_pixels: int | None = None) -> Image.Image | str:
    """The decoded RGB image, or one line saying why these bytes are not a usable image."""
    try:
        return decode_bytes(data, max_pixels)
    except Exception as exc:  # any decoder failure is a reason for this one input, never a crash
        return failure_reason(exc)


def result_table(names: list[str], probs: np.ndarray, errors: dict[int, str], classes: list[str]) -> pd.DataFrame:
    """One row per input in the given order: prediction, its probability and every class's probability;
    an input that could not be classified has its reason in `error` and no probabilities."""
    readable = [i for i in range(len(names)) if i not in errors]
    table = pd.DataFrame({"path": names, "prediction": pd.Series([None] * len(names), dtype="string"),
                          "confidence": np.nan})
    if readable:
        table.loc[readable, "prediction"] = np.asarray(classes, dtype=object)[probs.argmax(1)]
        table.loc[readable, "confidence"] = probs.max(1)
    for index, name in enumerate(classes):
        table[prob_column(name)] = np.nan
        if readable:
            table.loc[readable, prob_column(name)] = probs[:, index]
    table["error"] = pd.Series([errors.get(i) for i in range(len(names))], dtype="string")
    return table


def run_splits(run_dir: Path) -> dict[str, str]:
    """sha256 of each of the run's images -> its split: "cv" (all fold models but one trained on it) or
    "test" (held out from every fold model). A file the run holds in both splits counts as cv."""
    samples = store.read_table(Path(run_dir), "samples")
    splits = dict(zip(samples["sha256"], samples["split"]))
    splits.update(dict.fromkeys(samples.loc[samples["split"] == "cv", "sha256"], "cv"))
    return splits


def _read(path: Path) -> tuple[Image.Image | str, str | None]:
    """The decoded image (or why not) and the sha256 of the file's bytes (None when unreadable)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return failure_reason(exc), None
    return decode(data), hashlib.sha256(data).hexdigest()


def predict_files(ensemble: Ensemble, paths: list[Path], splits: dict[str, str], tta: bool = False,
                  workers: int = 4) -> pd.DataFrame:
    """`result_table` of image files, decoded (in threads) and classified one batch at a time, and a last
    column, `in_run_split`: which files are the run's own images (`splits`: its `run_splits`), matched by content:
    cv (the models trained on it, so its prediction is optimistic), test (held out), or empty; then the OOD
    columns (`add_ood_columns`)."""
    size = batch_size_for(ensemble)
    probs, scores, errors, digests = [], [], {}, []
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without holding the GIL
        for start in range(0, len(paths), size):
            decoded, batch_digests = zip(*pool.map(_read, paths[start:start + size]))
            digests += batch_digests
            errors.update({start + i: d for i, d in enumerate(decoded) if isinstance(d, str)})
            images = [d for d in decoded if not isinstance(d, str)]
            if images:   # scored batch by batch: features of a large folder would not fit in memory
                embeddings = [] if ensemble.ood is not None else None
                probs.append(classify(ensemble, images, tta, size, embeddings))
                scores.append(ood_scores(ensemble, embeddings or []))
    stacked = np.concatenate(probs) if probs else np.zeros((0, len(ensemble.classes)), dtype=np.float32)
    table = result_table([str(p) for p in paths], stacked, errors, ensemble.classes)
    table["in_run_split"] = pd.Series([splits.get(d) for d in digests], dtype="string")
    return add_ood_columns(table, np.concatenate(scores) if ensemble.ood is not None and scores else None,
                           ensemble.ood)


def add_prediction_sets(table: pd.DataFrame, confidence: Confidence) -> pd.DataFrame:
    """`table` (a `result_table`) with three more columns, empty for an unclassified row: `prediction_set`, the
    classes the image could be at `confidence.coverage` (most probable first, joined by "|"); `set_size`; and
    `calibrated_confidence`, the top class's probability after temperature scaling."""
    readable = table.index[table["error"].isna()]
    probs = table.loc[readable, [prob_column(c) for c in confidence.classes]].to_numpy(np.float64)
    members = confidence.sets(probs)
    table = table.assign(prediction_set=pd.Series(pd.NA, index=table.index, dtype="string"),
                         set_size=pd.Series(pd.NA, index=table.index, dtype="Int64"), calibrated_confidence=np.nan)
    table.loc[readable, "prediction_set"] = ["|".join(labels) for labels in confidence.labels(members, probs)]
    table.loc[readable, "set_size"] = members.sum(axis=1)
    table.loc[readable, "calibrated_confidence"] = confidence.calibrated(probs).max(axis=1)
    return table


def seen_in_training_warning(table: pd.DataFrame) -> str | None:
    """One line when some inputs are images the run's fold models trained on (`in_run_split` cv)."""
    seen = int((table["in_run_split"] == "cv").sum())
    if not seen:
        return None
    what, it, outcome = (("is an image", "it", "its prediction is") if seen == 1 else
                         ("are images", "them", "their predictions are"))
    return (f"warning: {seen} of the {len(table)} files {what} the run trained on (cross-validation split, "
            f"in_run_split = cv): every fold model but one saw {it} in training, so {outcome} optimistic")


def ood_warning(table: pd.DataFrame, reference: OodReference | None) -> str | None:
    """One line on how many images are out of distribution, and what the flag means; None when none is."""
    flagged = int(table.get("out_of_distribution", pd.Series(dtype="boolean")).fillna(False).sum())
    if reference is None or not flagged:
        return None
    return (f"warning: {flagged} of the {int(table['error'].isna().sum())} images are out of distribution "
            f"(out_of_distribution = True): farther from the training images than {reference.quantile:.0%} of "
            f"held-out images of known classes (distance to the k-th nearest training image in "
            f"{reference.space_words()}, k = {reference.k}); their predicted class is a guess")


def collect_inputs(arguments: list[str], command: str = "predict") -> list[Path]:
    """Files as given, and every file under a folder (recursively, sorted, hidden ones skipped). A path that
    does not exist is kept, so it is reported as not found rather than silently dropped."""
    paths = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            paths.append(path)
    if not paths:
        raise UserError(f"{command}: no files found in {', '.join(arguments) or 'the arguments'}; "
                        f"give image files or folders of images")
    return paths



OOD_NOTE = "OUT OF DISTRIBUTION (unlike the training images; model's guess: {})"


def printable(table: pd.DataFrame, limit: int = 50) -> str:
    """The terminal view of a `result_table`: the first `limit` predictions (an image out of distribution says
    so in place of its class), then every unreadable file with its reason."""
    done = table[table["error"].isna()]
    flagged = done.get("out_of_distribution", pd.Series(False, index=done.index)).fillna(False).astype(bool)
    labels = done["prediction"].where(~flagged, done["prediction"].map(OOD_NOTE.format))
    columns = ["path", "prediction", "confidence"] + (["prediction_set"] if "prediction_set" in table else [])
    shown = done.assign(prediction=labels)[columns].head(limit).assign(
        confidence=lambda t: (100 * t["confidence"]).map("{:.1f}%".format))
    lines = [shown.to_string(index=False) if len(shown) else "no image could be classified"]
    if len(done) > limit:
        lines.append(f"... and {len(done) - limit} more (all in the CSV)")
    failed = table[table["error"].notna()]
    if len(failed):
        lines.append(f"\n{len(failed)} file{'' if len(failed) == 1 else 's'} could not be classified:")
        lines += [f"  {row.path}: {row.error}" for row in failed.itertuples()]
    return "\n".join(lines)
