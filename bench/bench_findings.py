"""Planted problems: how often each finding catches a problem, and how often it fires on clean data (issue #24).

    .venv/bin/python bench/bench_findings.py [--seeds 2] [--problem-seeds 1] [--only demo|generated] [--work DIR]
    .venv/bin/python bench/bench_findings.py --table RESULTS.json     # print the tables of an earlier run again

Every scenario is an ordinary head-mode run (`lifecycle.run_new`, as `train_cli.py --train-mode head` makes it: 5
folds, test split 20%, its diagnostics and findings), on a manifest: the clean data with one problem planted. The
backbone features come from the content-addressed cache, so only planted images (copies, edited pixels) cost a
forward pass. Two clean datasets: the demo set (413 product icons, 3 classes, labels right by construction: Unicode
subcategories) and a generated one (3 classes of 80 coloured-shape images). Problems, one at a time:

- label flips, 2% / 5% / 10% of the images, uniform (to any other class) and between similar classes (to the class
  whose backbone centroid is nearest): recall and precision of every label-issue flag column of
  label_issues.parquet (`flagged` is cleanlab's; columns other detectors add are measured the same way), of the
  whole listed table, and the precision of the list's first N rows, N = the flips planted;
- duplicates across splits (demo): 8 images each copied as identical bytes, as a half-size JPEG (quality 60), and
  as a near copy (90% centre crop, 5% brighter), each copy in a group of its own (splits ignore duplicates:
  --dedup-groups off): share of planted pairs found, and the leakage finding;
- group leakage (demo, --no-groups): does the leakage finding fire;
- a shortcut (demo): every Digital_Music image darkened to 55%: does `shortcut:brightness` fire;
- a failing slice (demo): 30 images blurred (radius 6): does a slice finding hold most of them;
- unusable images (demo): 8 dark (10% brightness), 8 blurry (radius 3), 8 tiny (24 px): share flagged;
- imbalance (demo): Health_and_Personal_Care cut to 20 images: the imbalance finding's severity.

Clean runs give the false alarms: the findings fired (with severity) and the share of images each detector
flags (label issues listed, duplicate pairs, outliers, unusable images, slices). Results go to
WORK/results.json as they come, so a partial run still prints its tables.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.config import DEMO_DATA, RunConfig  # noqa: E402
from core.data.dataset import load_rgb  # noqa: E402
from core.run import lifecycle  # noqa: E402

FLIP_RATES = (0.05, 0.10, 0.02)   # 5% first: the rate of the target
NOT_FLAGS = {"affects_test_metric"}   # boolean columns of label_issues.parquet that are not a detector's flag


# ---------------------------------------------------------------- datasets and runs

def demo_manifest() -> pd.DataFrame:
    table = pd.read_csv(DEMO_DATA, dtype=str)
    return pd.DataFrame({"path": [str((DEMO_DATA.parent / p).resolve()) for p in table["path"]],
                         "label": table["label"], "group": table["group"]})


def generated_manifest(work: Path) -> pd.DataFrame:
    """3 classes x 80 images, 96 px: a class is a hue family; each image a few random shapes on a textured
    ground (written once, so the features are cached after the first run)."""
    folder, rows = work / "generated", []
    rng = np.random.default_rng(0)
    for c, name in enumerate(("reds", "greens", "blues")):
        for i in range(80):
            path = folder / name / f"{i:03d}.png"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                base = np.full((96, 96, 3), 60, dtype=np.int16)
                base[..., c] = 150
                base += rng.integers(-25, 25, base.shape)
                for _ in range(rng.integers(2, 5)):
                    x, y, s = rng.integers(0, 70, 2).tolist() + [int(rng.integers(10, 30))]
                    colour = rng.integers(0, 256, 3)
                    colour[c] = 230
                    base[y:y + s, x:x + s] = colour
                Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(path)
            rows.append({"path": str(path), "label": name, "group": None})
    return pd.DataFrame(rows)


def train(manifest: pd.DataFrame, work: Path, name: str, seed: int, use_groups: bool = True,
          dedup: str = "exact") -> Path:
    """One head-mode run on this manifest; its progress output is swallowed."""
    csv = work / "manifests" / f"{name}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    columns = ["path", "label"] + (["group"] if manifest["group"].notna().any() else [])
    manifest[columns].to_csv(csv, index=False)
    cfg = RunConfig(data=str(csv), runs_dir=str(work / "runs"), folds=5, seed=seed, train_mode="head",
                    use_groups=use_groups, dedup_groups=dedup, name=name)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        return lifecycle.run_new(cfg)


def read_run(run_dir: Path) -> dict:
    info = json.loads((run_dir / "run.json").read_text())
    root = Path(info["dataset"]["root"])
    samples = pd.read_parquet(run_dir / "samples.parquet")
    path_of = {int(i): str((root / p).resolve()) for i, p in zip(samples["sample_id"], samples["path"])}
    tables = {name: pd.read_parquet(run_dir / f"{name}.parquet") for name in
              ("label_issues", "duplicates", "outliers", "image_properties", "slices")}
    findings = json.loads((run_dir / "findings.json").read_text())["findings"]
    strength = json.loads((run_dir / "diagnostics.json").read_text())["imbalance"]["balanced_accuracy"]
    return {"n": len(samples), "path_of": path_of, "tables": tables, "findings": findings,
            "balanced_accuracy": strength, "samples": samples, "run_dir": run_dir}


def fired(run: dict, prefix: str) -> list[dict]:
    return [f for f in run["findings"] if f["id"] == prefix or f["id"].startswith(prefix + ":")]


def severity(run: dict, prefix: str) -> str:
    found = fired(run, prefix)
    return found[0]["severity"] if found else "-"


# ---------------------------------------------------------------- planting

def flip(manifest: pd.DataFrame, rate: float, similar: dict[str, str] | None, seed: int) -> tuple[pd.DataFrame, set]:
    """`rate` of the images get another label: any other class (uniform), or the class nearest to theirs."""
    rng = np.random.default_rng(seed)
    out = manifest.copy()
    chosen = rng.choice(len(out), size=max(1, round(rate * len(out))), replace=False)
    classes = sorted(out["label"].unique())
    for i in chosen:
        label = out.at[i, "label"]
        out.at[i, "label"] = similar[label] if similar else rng.choice([c for c in classes if c != label])
    return out, {out.at[i, "path"] for i in chosen}


def nearest_classes(run: dict) -> dict[str, str]:
    """Each class's most similar other class: nearest backbone centroid (from a clean run)."""
    x = np.load(run["run_dir"] / "embeddings" / "backbone.npy").astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = run["samples"]["label"].to_numpy()
    classes = sorted(set(labels))
    centroids = np.stack([x[labels == c].mean(0) for c in classes])
    similarity = centroids @ centroids.T
    np.fill_diagonal(similarity, -np.inf)
    return {c: classes[int(similarity[i].argmax())] for i, c in enumerate(classes)}


def edited(manifest: pd.DataFrame, rows: np.ndarray, folder: Path, edit, tag: str) -> pd.DataFrame:
    """The manifest with these rows' images replaced by edited copies written under `folder`."""
    out = manifest.copy()
    for i in rows:
        source = Path(out.at[i, "path"])
        target = folder / tag / source.parent.name / f"{source.stem}.png"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            edit(load_rgb(source)).save(target)
        out.at[i, "path"] = str(target)
    return out


def darker(factor: float):
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


def blurred(radius: float):
    return lambda image: image.filter(ImageFilter.GaussianBlur(radius))


def shrunk(side: int):
    return lambda image: image.resize((side, side), Image.Resampling.BILINEAR)


def with_copies(manifest: pd.DataFrame, kind: str, n: int, folder: Path, seed: int) -> tuple[pd.DataFrame, list]:
    """n images each given a copy (a new row, a group of its own): identical bytes, a half-size JPEG at quality
    60, or a near copy (90% centre crop, 5% brighter, PNG). Returns the manifest and the planted path pairs."""
    rng = np.random.default_rng(seed)
    rows, pairs = [], []
    for i in rng.choice(len(manifest), size=n, replace=False):
        source = Path(manifest.at[i, "path"])
        suffix = "png" if kind == "near" else "jpg"
        target = folder / f"{kind}-{seed}" / source.parent.name / f"copy_{source.stem}.{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "exact":
            target = target.with_suffix(source.suffix)
            target.write_bytes(source.read_bytes())
        else:
            image = load_rgb(source)
            if kind == "copy":
                image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR).save(target, quality=60)
            else:
                w, h = image.size
                crop = image.crop((w // 20, h // 20, w - w // 20, h - h // 20))
                ImageEnhance.Brightness(crop).enhance(1.05).save(target)
        rows.append({"path": str(target), "label": manifest.at[i, "label"], "group": f"planted-{kind}-{i}"})
        pairs.append((str(source.resolve()), str(target.resolve())))
    return pd.concat([manifest, pd.DataFrame(rows)], ignore_index=True), pairs


# ---------------------------------------------------------------- measuring

def label_scores(run: dict, truth: set) -> dict:
    """Recall and precision of each flag column and of the whole list; precision of the first len(truth) rows."""
    issues = run["tables"]["label_issues"]
    paths = issues["sample_id"].map(run["path_of"])
    out = {}
    flags = [c for c in issues.columns if issues[c].dtype == bool and c not in NOT_FLAGS]
    for name, mask in [(c, issues[c].to_numpy()) for c in flags] + [("listed", np.ones(len(issues), bool))]:
        chosen = set(paths[mask])
        hit = len(chosen & truth)
        out[name] = {"flagged": len(chosen), "recall": hit / len(truth),
                     "precision": hit / len(chosen) if chosen else None}
    top = set(paths.iloc[:len(truth)])
    out["precision_at_n"] = len(top & truth) / len(truth)
    return out


def flagged_images(run: dict) -> dict:
    """Images each detector flags (share of the run's images)."""
    t, n = run["tables"], run["n"]
    dup = t["duplicates"]
    props = t["image_properties"]
    quality = props[[c for c in ("dark", "blurry", "tiny", "odd_aspect", "low_information") if c in props]].any(axis=1)
    counts = {"label issues (listed)": len(t["label_issues"]),
              "label issues (cleanlab flag)": int(t["label_issues"]["flagged"].sum()),
              "duplicate pairs (images)": len(set(dup["sample_id_a"]) | set(dup["sample_id_b"])),
              "leaking pairs (images)": len(set(dup.loc[dup["leakage"], "sample_id_a"])
                                            | set(dup.loc[dup["leakage"], "sample_id_b"])),
              "outliers": int(t["outliers"]["is_outlier"].sum()), "unusable images": int(quality.sum()),
              "slices": int(t["slices"]["sample_id"].nunique()) if len(t["slices"]) else 0}
    return {name: {"images": k, "share": k / n} for name, k in counts.items()}


def pairs_found(run: dict, planted: list) -> dict:
    dup = run["tables"]["duplicates"]
    found = {}
    for a, b, kind in zip(dup["sample_id_a"], dup["sample_id_b"], dup["kind"]):
        pair = frozenset((run["path_of"][int(a)], run["path_of"][int(b)]))
        found[pair] = kind
    kinds = [found.get(frozenset(p)) for p in planted]
    return {"found": sum(k is not None for k in kinds) / len(planted),
            "as": {k: kinds.count(k) for k in set(kinds) if k}, "leakage": severity(run, "leakage")}


# ---------------------------------------------------------------- scenarios

class Results:
    def __init__(self, path: Path):
        self.path, self.rows = path, (json.loads(path.read_text()) if path.exists() else [])

    def done(self, key: str) -> bool:
        return any(r["key"] == key for r in self.rows)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.path.write_text(json.dumps(self.rows, indent=1))


def scenario(results: Results, key: str, make) -> None:
    """Run one scenario unless results already hold it (a rerun resumes)."""
    if results.done(key):
        return
    started = time.perf_counter()
    try:
        row = make()
    except Exception as exc:   # one failed scenario is reported and skipped; a rerun tries it again
        print(f"  {key}: failed: {type(exc).__name__}: {exc}", flush=True)
        return
    row.update(key=key, seconds=round(time.perf_counter() - started, 1))
    results.add(row)
    print(f"  {key}: {row['seconds']:.0f} s", flush=True)


def clean_row(run: dict) -> dict:
    return {"kind": "clean", "balanced_accuracy": run["balanced_accuracy"], "images": run["n"],
            "findings": [[f["id"], f["severity"]] for f in run["findings"]], "flagged": flagged_images(run)}


def flips_rows(results: Results, dataset: str, manifest: pd.DataFrame, work: Path, seeds: int,
               similar: dict[str, str], rates: tuple[float, ...]) -> None:
    for rate in rates:
        for how in ("uniform", "similar"):
            for seed in range(seeds):
                def make(how=how, rate=rate, seed=seed):
                    planted, truth = flip(manifest, rate, similar if how == "similar" else None, seed + 1)
                    run = read_run(train(planted, work, f"{dataset}-flip-{how}-{rate}-{seed}", seed))
                    return {"kind": "flips", "dataset": dataset, "how": how, "rate": rate, "seed": seed,
                            "planted": len(truth), "balanced_accuracy": run["balanced_accuracy"],
                            "scores": label_scores(run, truth), "finding": severity(run, "label-issues")}
                scenario(results, f"{dataset}/flips/{how}/{rate}/{seed}", make)


def demo_problems(results: Results, manifest: pd.DataFrame, work: Path, seeds: int) -> None:
    folder = work / "planted"
    for kind in ("exact", "copy", "near"):
        for seed in range(seeds):
            def make(kind=kind, seed=seed):
                planted, pairs = with_copies(manifest, kind, 8, folder, seed)
                run = read_run(train(planted, work, f"demo-dup-{kind}-{seed}", seed, dedup="off"))
                return {"kind": "duplicates", "dataset": "demo", "how": kind, "seed": seed, "planted": len(pairs),
                        **pairs_found(run, pairs)}
            scenario(results, f"demo/duplicates/{kind}/{seed}", make)
    for seed in range(seeds):
        def make(seed=seed):
            run = read_run(train(manifest, work, f"demo-nogroups-{seed}", seed, use_groups=False))
            return {"kind": "groups", "dataset": "demo", "seed": seed, "leakage": severity(run, "leakage"),
                    "overfitting": severity(run, "overfitting")}
        scenario(results, f"demo/no-groups/{seed}", make)

    def unusable():
        rng = np.random.default_rng(11)
        rows = rng.choice(len(manifest), size=24, replace=False)
        planted = manifest
        for part, (edit, tag) in zip(np.split(rows, 3), ((darker(0.1), "dark10"), (blurred(3), "blur3"),
                                                        (shrunk(24), "tiny24"))):
            planted = edited(planted, part, folder, edit, tag)
        run = read_run(train(planted, work, "demo-quality", 0))
        props = run["tables"]["image_properties"].assign(path=lambda f: f["sample_id"].map(run["path_of"]))
        out = {}
        for part, flag in zip(np.split(rows, 3), ("dark", "blurry", "tiny")):
            truth = {str(Path(p).resolve()) for p in planted.loc[part, "path"]}
            flagged = set(props.loc[props[flag], "path"])
            out[flag] = {"recall": len(flagged & truth) / len(truth), "others": len(flagged - truth)}
        return {"kind": "quality", "dataset": "demo", "flags": out}
    scenario(results, "demo/quality", unusable)

    def imbalance():
        # 20 images spread over its groups (one per group first): grouped folds need a few groups per class
        rank = manifest.groupby("group").cumcount() * len(manifest) + np.arange(len(manifest))
        cut = rank[manifest["label"] == "Health_and_Personal_Care"].nsmallest(20).index
        keep = manifest[(manifest["label"] != "Health_and_Personal_Care") | manifest.index.isin(cut)]
        keep = keep.reset_index(drop=True)
        run = read_run(train(keep, work, "demo-imbalance", 0))
        return {"kind": "imbalance", "dataset": "demo", "finding": severity(run, "imbalance")}
    scenario(results, "demo/imbalance/20", imbalance)

    def shortcut():
        rows = np.flatnonzero(manifest["label"].to_numpy() == "Digital_Music")
        run = read_run(train(edited(manifest, rows, folder, darker(0.55), "dark55"), work, "demo-shortcut", 0))
        return {"kind": "shortcut", "dataset": "demo", "finding": severity(run, "shortcut:brightness")}
    scenario(results, "demo/shortcut/brightness", shortcut)

    def failing_slice():
        rows = np.random.default_rng(7).choice(len(manifest), size=30, replace=False)
        run = read_run(train(edited(manifest, rows, folder, blurred(6), "blur6"), work, "demo-slice", 0))
        truth = {str(Path(p).resolve()) for p in edited(manifest, rows, folder, blurred(6), "blur6").loc[rows, "path"]}
        slices = run["tables"]["slices"]
        best = 0.0
        for _, members in slices.groupby("slice"):
            inside = {run["path_of"][int(i)] for i in members["sample_id"]}
            best = max(best, len(inside & truth) / len(truth))
        return {"kind": "slice", "dataset": "demo", "found": len(fired(run, "slice")), "best_share": best}
    scenario(results, "demo/slice/blur6", failing_slice)

# ---------------------------------------------------------------- tables

def mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def print_tables(rows: list[dict]) -> None:
    print("\nFalse alarms on clean data (labels right, nothing planted):")
    print("| dataset | out-of-fold balanced accuracy | findings (severity) | images flagged, by detector |")
    print("|---|---|---|---|")
    for r in (r for r in rows if r["kind"] == "clean"):
        findings = ", ".join(f"{i} ({s})" for i, s in r["findings"])
        flagged = "; ".join(f"{k} {v['images']} ({100 * v['share']:.1f}%)" for k, v in r["flagged"].items())
        print(f"| {r['key'].split('/')[0]} seed {r['key'].split('/')[-1]} | {100 * r['balanced_accuracy']:.1f}% "
              f"| {findings} | {flagged} |")
    flips = [r for r in rows if r["kind"] == "flips"]
    if flips:
        print("\nLabel flips: recall / precision of each flag (mean over seeds), precision of the list's first N rows "
              "(N = flips planted):")
        columns = sorted({c for r in flips for c in r["scores"] if c != "precision_at_n"})
        print("| dataset | flips | N | balanced accuracy | " + " | ".join(f"{c}: recall / precision / flagged"
                                                                    for c in columns) + " | precision at N | finding |")
        print("|---|---|---|---|" + "---|" * len(columns) + "---|---|")
        groups = {}
        for r in flips:
            groups.setdefault((r["dataset"], r["how"], r["rate"]), []).append(r)
        for (dataset, how, rate), group in groups.items():
            cells = []
            for c in columns:
                scores = [r["scores"].get(c) for r in group if r["scores"].get(c)]
                cells.append(f"{mean(s['recall'] for s in scores):.2f} / {mean(s['precision'] for s in scores):.2f}"
                             f" / {mean(s['flagged'] for s in scores):.0f}")
            print(f"| {dataset} | {how} {100 * rate:.0f}% ({len(group)} seeds) | "
                  f"{mean(r['planted'] for r in group):.0f} | "
                  f"{100 * mean(r['balanced_accuracy'] for r in group):.1f}% | " + " | ".join(cells)
                  + f" | {mean(r['scores']['precision_at_n'] for r in group):.2f} | "
                  + ", ".join(sorted({r['finding'] for r in group})) + " |")
    other = [r for r in rows if r["kind"] not in ("clean", "flips")]
    if other:
        print("\nOther planted problems (demo):")
        print("| problem | result |")
        print("|---|---|")
        for r in other:
            detail = {k: v for k, v in r.items() if k not in ("kind", "dataset", "key", "seconds", "seed")}
            print(f"| {r['key']} | {json.dumps(detail)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the clean runs and label flips")
    parser.add_argument("--problem-seeds", type=int, default=1, help="seeds of the other planted problems")
    parser.add_argument("--only", choices=("demo", "generated"))
    parser.add_argument("--work", default="/tmp/foldlens-bench-findings")
    parser.add_argument("--table", help="print the tables of this results.json and stop")
    args = parser.parse_args()
    if args.table:
        print_tables(json.loads(Path(args.table).read_text()))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = Results(work / "results.json")
    print(f"results: {results.path} (2-core CPU shared with other jobs: seconds are not comparable)", flush=True)
    datasets = [d for d in ("demo", "generated") if not args.only or d == args.only]
    manifests = {d: demo_manifest() if d == "demo" else generated_manifest(work) for d in datasets}
    for dataset in datasets:   # clean runs first: the false alarms, and each class's nearest class
        for seed in range(args.seeds):
            scenario(results, f"{dataset}/clean/{seed}",
                     lambda dataset=dataset, seed=seed: clean_row(read_run(
                         train(manifests[dataset], work, f"{dataset}-clean-{seed}", seed))))
    similar = {d: nearest_classes(read_run(sorted((work / "runs").glob(f"*-{d}-clean-0"))[-1])) for d in datasets}
    for dataset in datasets:   # the target's rate on both sets first, then the other problems, then other rates
        flips_rows(results, dataset, manifests[dataset], work, args.seeds, similar[dataset], FLIP_RATES[:1])
    if "demo" in datasets:
        demo_problems(results, manifests["demo"], work, args.problem_seeds)
    for dataset in datasets:
        flips_rows(results, dataset, manifests[dataset], work, args.seeds, similar[dataset], FLIP_RATES[1:])
    print_tables(results.rows)


if __name__ == "__main__":
    main()
