"""From a reviewed run to a cleaned dataset: decisions per image, the cleaned manifest and its review.json.

A review is a list of decisions (drop, relabel to a class, keep) about samples of one run. It becomes a
manifest in the format `--data` reads (path,label,group, with absolute paths so it works wherever it is
saved) and a review.json saying what changed and why. Nothing here writes into a run: the dashboard offers
both files as downloads, `train_cli.py clean` writes them where it is told.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from core.config import RunConfig, command_line
from core.errors import UserError
from core.store.hashing import file_sha256
from core.store.run_store import atomic_path, read_table

REVIEW_SCHEMA_VERSION = 1
REVIEW_FILE = "review.json"          # written next to the cleaned manifest; a run trained on it links back
ACTIONS = ("drop", "relabel", "keep")
URL_LIMIT = 200                       # decisions kept in the URL; a longer list lives in the session only
_URL_ITEM = re.compile(r"^(\d+)(d|k|r(\d+))$")


@dataclass(frozen=True)
class Decision:
    sample_id: int
    action: str                # drop | relabel | keep (reviewed, fine as it is)
    label: str | None = None   # the new class, for relabel

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action {self.action!r}: choose one of {', '.join(ACTIONS)}")
        if (self.action == "relabel") != (self.label is not None):
            raise ValueError("a relabel decision needs the new label, and only a relabel has one")


# ---------------------------------------------------------------- the review list in a URL

def encode_review(decisions: list[Decision], classes: list[str]) -> str | None:
    """A short URL value for the list ("12d,40r3,7k": drop 12, relabel 40 to class index 3, keep 7), or None
    when the list is longer than URL_LIMIT (it then lives in the browser session only)."""
    if len(decisions) > URL_LIMIT:
        return None
    codes = {"drop": "d", "keep": "k"}
    return ",".join(f"{d.sample_id}{codes.get(d.action) or f'r{classes.index(d.label)}'}" for d in decisions)


def decode_review(text: str | None, classes: list[str], n_samples: int) -> list[Decision]:
    """The decisions of a URL value; items that do not parse or point outside the run are left out, so an
    edited or stale link never breaks a page."""
    decisions: dict[int, Decision] = {}
    for item in (text or "").split(","):
        match = _URL_ITEM.match(item.strip())
        if not match or int(match[1]) >= n_samples:
            continue
        sample_id = int(match[1])
        if match[2] in ("d", "k"):
            decisions[sample_id] = Decision(sample_id, "drop" if match[2] == "d" else "keep")
        elif int(match[3]) < len(classes):
            decisions[sample_id] = Decision(sample_id, "relabel", classes[int(match[3])])
    return list(decisions.values())


def add_decisions(decisions: list[Decision], sample_ids: list[int], action: str,
                  label: str | None = None) -> list[Decision]:
    """The list with one decision for each of `sample_ids` (replacing an earlier one about the same image);
    order of first addition is kept."""
    new = {int(i): Decision(int(i), action, label if action == "relabel" else None) for i in sample_ids}
    kept = [new.pop(d.sample_id, d) for d in decisions]
    return kept + list(new.values())


# ---------------------------------------------------------------- why: the run's evidence per image

def suspected_label_errors(label_issues: pd.DataFrame) -> pd.DataFrame:
    """The listed label issues in the headline (`agreed`: as many as the estimate of wrong labels, the strongest
    combined evidence among those enough detectors flag); a file from before the detectors
    listed cleanlab's alone, and all of its rows count."""
    return label_issues[label_issues["agreed"]] if "agreed" in label_issues else label_issues


def _detector_words(row) -> str:
    named = [name for name, flag in (("cleanlab", getattr(row, "cleanlab", True)),
                                     ("AUM", getattr(row, "aum_flag", False)),
                                     ("neighbours", getattr(row, "neighbours_flag", False))) if flag]
    return f"flagged by {', '.join(named)}; " if hasattr(row, "detectors") else ""


def evidence(sample_ids: list[int], label_issues: pd.DataFrame | None, duplicates: pd.DataFrame | None,
             outliers: pd.DataFrame | None) -> dict[int, str]:
    """What the run's diagnostics say about each image, in words (empty when they say nothing)."""
    notes: dict[int, list[str]] = {int(i): [] for i in sample_ids}
    if label_issues is not None:
        for row in label_issues[label_issues["sample_id"].isin(notes)].itertuples():
            notes[row.sample_id].append(f"{_detector_words(row)}cleanlab quality {row.quality:.2f}, "
                                        f"suggested {row.suggested_label}")
    if duplicates is not None:
        for own, other in (("a", "b"), ("b", "a")):
            rows = duplicates[duplicates[f"sample_id_{own}"].isin(notes)]
            for row in rows.to_dict("records"):
                what = {"exact": "identical file to", "copy": "the same picture (resized or re-encoded) as"}.get(
                    row["kind"], f"near-duplicate (similarity {row['similarity']:.2f}) of")
                notes[row[f"sample_id_{own}"]].append(f"{what} #{row[f'sample_id_{other}']}")
    if outliers is not None:
        for row in outliers[outliers["sample_id"].isin(notes) & outliers["is_outlier"]].itertuples():
            notes[row.sample_id].append(f"outlier in its class (z {row.z:.1f})")
    return {sample_id: "; ".join(parts) for sample_id, parts in notes.items()}


# ---------------------------------------------------------------- rules (the `clean` command)

def rule_decisions(samples: pd.DataFrame, label_issues: pd.DataFrame | None, drop_label_issues: float | None,
                   drop_exact_duplicates: bool) -> list[Decision]:
    """Drop every suspected label error (agreed by enough detectors) with quality below `drop_label_issues`, and
    every identical file but the first (lowest sample_id) of its set."""
    drop: set[int] = set()
    if drop_label_issues is not None:
        if label_issues is None:
            raise UserError("--drop-label-issues: the run has no label_issues.parquet yet; run "
                            "python train_cli.py diagnose RUN_ID first")
        suspects = suspected_label_errors(label_issues)
        drop |= set(suspects.loc[suspects["quality"] < drop_label_issues, "sample_id"].astype(int))
    if drop_exact_duplicates:
        repeats = samples[samples["sha256"].duplicated(keep="first")]   # samples are in sample_id order
        drop |= set(repeats["sample_id"].astype(int))
    return [Decision(i, "drop") for i in sorted(drop)]


def rules_outcome(samples: pd.DataFrame, label_issues: pd.DataFrame | None, drop_label_issues: float | None,
                  drop_exact_duplicates: bool, decisions: list[Decision]) -> str:
    """What the rules dropped and which flagged images they kept, and why: "7 dropped" alone reads as if the
    diagnostics found 7 problems when they flagged 52 and the quality threshold kept 45 for a person to review."""
    dropped = {d.sample_id for d in decisions if d.action == "drop"}
    parts = [f"{len(dropped)} dropped"]
    flagged = set() if label_issues is None else set(label_issues["sample_id"].astype(int))
    kept_issues = len(flagged - dropped)
    if kept_issues:
        single = "flagged by too few detectors, or " if "agreed" in label_issues else ""
        why = (f"{single}label quality {drop_label_issues:g} or more: more likely right than the dropped ones"
               if drop_label_issues is not None else "no --drop-label-issues given")
        parts.append(f"{kept_issues} of {len(flagged)} suspected label issues kept ({why}; check them on the "
                     "dashboard's Misclassified page, Label issues tab)")
    repeats = int(samples["sha256"].duplicated(keep="first").sum())
    if repeats and not drop_exact_duplicates:
        parts.append(f"{repeats} exact duplicate files kept (no --drop-exact-duplicates given)")
    return "; ".join(parts)


# ---------------------------------------------------------------- merged classes

MERGE_JOIN = "+"   # the merged class's default name: "A+B"


def _split_classes(parts: list[str], known: set[str]) -> list[str] | None:
    """The comma-separated `parts` read as known class names (a name may hold commas), or None."""
    if not parts:
        return []
    for end in range(1, len(parts) + 1):
        name = ",".join(parts[:end]).strip()
        rest = _split_classes(parts[end:], known) if name in known else None
        if rest is not None:
            return [name, *rest]
    return None


def parse_merge(text: str, classes: list[str], where: str) -> list[str]:
    """The classes of one --merge-classes value "A,B[,C...]". A class name may itself hold a comma: the value is
    read as the first split into known class names. `where` says where the names can be seen, for the error line."""
    parts, known = text.split(","), set(classes)
    group = _split_classes(parts, known)
    if group is None:
        unknown = next(p.strip() for p in parts if p.strip() not in known)
        close = difflib.get_close_matches(unknown, classes, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"--merge-classes {text!r}: no class {unknown!r}{hint}; {where}")
    if len(set(group)) < 2:
        raise UserError(f"--merge-classes {text!r}: name two or more different classes, e.g. A,B")
    return list(dict.fromkeys(group))


def merge_map(groups: list[list[str]], names: list[str | None], classes: list[str]) -> dict[str, str]:
    """{old class: merged class} of every merged group (`names[i]` or "A+B"). A class may be in one group only, and
    a merged name may be one of its own group's classes, never another class of the run."""
    mapping: dict[str, str] = {}
    for group, name in zip(groups, names):
        name = (name or MERGE_JOIN.join(group)).strip()
        if not name:
            raise UserError("--merged-name: give a class name that is not empty")
        if name in classes and name not in group:
            raise UserError(f"--merged-name {name!r} is another class of the run; add it to the classes to merge")
        for old in group:
            if old in mapping:
                raise UserError(f"--merge-classes: {old!r} is in two merges; name each class once")
            mapping[old] = name
    if any(mapping.get(new, new) != new for new in mapping.values()):
        raise UserError("--merge-classes: a merged name is a class of another merge; give each merge its own name")
    return mapping


def merge_decisions(samples: pd.DataFrame, mapping: dict[str, str], skip: set[int] = frozenset()) -> list[Decision]:
    """A relabel to the merged class for every image of a merged class (except those in `skip`, e.g. dropped)."""
    moved = samples[samples["label"].isin(mapping) & ~samples["sample_id"].isin(skip)]
    return [Decision(int(i), "relabel", mapping[label]) for i, label in zip(moved["sample_id"], moved["label"])
            if mapping[label] != label]


def merge_reasons(decisions: list[Decision], mapping: dict[str, str]) -> dict[int, str]:
    """review.json's reason of each merged image: which classes became one."""
    groups: dict[str, list[str]] = {}
    for old, new in mapping.items():
        groups.setdefault(new, []).append(old)
    return {d.sample_id: f"classes {' and '.join(groups[d.label])} merged into {d.label}" for d in decisions
            if d.action == "relabel" and d.label in groups}


def merge_command(run_id: str, groups: list[tuple[str, str]], merged_name: str | None = None,
                  out: str = "merged.csv", runs_dir: str | Path | None = None) -> str:
    """The `clean` command that merges each (A, B) of `groups`, quoted for a shell (what the dashboard offers)."""
    argv = ["python", "train_cli.py", "clean", run_id]
    for a, b in groups:
        argv += ["--merge-classes", f"{a},{b}"]
    if merged_name:
        argv += ["--merged-name", merged_name]
    return shlex.join([*argv, "--out", out, *(["--runs-dir", str(runs_dir)] if runs_dir else [])])


# ---------------------------------------------------------------- the cleaned manifest and review.json

def cleaned_manifest(samples: pd.DataFrame, root: str | Path, decisions: list[Decision],
                     superclasses: dict[str, str] | None = None) -> pd.DataFrame:
    """path,label,group of every readable sample of the run, dropped rows removed and relabelled rows changed, and
    superclass (of the row's class, relabelled or not) when the run has a hierarchy. Paths are absolute (the run's
    dataset root joined with samples.path), so the CSV can be saved anywhere."""
    dropped = {d.sample_id for d in decisions if d.action == "drop"}
    relabelled = {d.sample_id: d.label for d in decisions if d.action == "relabel"}
    kept = samples[~samples["sample_id"].isin(dropped)]
    labels = [relabelled.get(int(i), label) for i, label in zip(kept["sample_id"], kept["label"])]
    root = Path(root)
    manifest = pd.DataFrame({"path": [(root / p).as_posix() for p in kept["path"]], "label": labels,
                             "group": kept["group"].astype(object).where(kept["group"].notna(), "").to_list()})
    return manifest.assign(superclass=[superclasses[label] for label in labels]) if superclasses else manifest


def manifest_csv(manifest: pd.DataFrame) -> bytes:
    return manifest.to_csv(index=False).encode()


def training_command(csv_name: str, source_config: dict, runs_dir: str | Path | None = None) -> str:
    """Train on the cleaned manifest with every setting of the source run (so the two compare like for like),
    into the source run's runs folder (default: the one it recorded), where the Compare page finds both."""
    source = RunConfig.from_dict(source_config)
    # redraw_splits off: the cleaned run keeps the source's splits, whatever the source did about its own
    cfg = dataclasses.replace(source, data=str(csv_name), name="cleaned", runs_dir=str(runs_dir or source.runs_dir),
                              redraw_splits=False)
    return command_line(cfg)


def review_record(info: dict, samples: pd.DataFrame, decisions: list[Decision], reasons: dict[int, str],
                  csv_bytes: bytes, *, rules: dict | None = None, csv_name: str = "cleaned.csv",
                  runs_dir: str | Path | None = None) -> dict:
    """review.json: the source run, what changed and why, and the sha256 of the manifest it goes with."""
    by_path = samples.set_index("sample_id")
    changes = [{"sample_id": d.sample_id, "path": by_path.at[d.sample_id, "path"], "action": d.action,
                "label": by_path.at[d.sample_id, "label"], "new_label": d.label,
                "reason": reasons.get(d.sample_id) or "reviewed by hand"} for d in decisions]
    counts = {action: sum(d.action == action for d in decisions) for action in ACTIONS}
    dataset = info.get("dataset") or {}
    return {
        "schema_version": REVIEW_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_run": info["run_id"],
        "source_dataset": {"root": dataset.get("root"), "manifest": dataset.get("manifest")},
        "rules": rules,
        "rows": {"source": len(samples), "cleaned": len(samples) - counts["drop"]},
        "counts": counts,
        "manifest_sha256": hashlib.sha256(csv_bytes).hexdigest(),
        "command": training_command(csv_name, info["config"], runs_dir),
        "changes": changes,
    }


def review_json(record: dict) -> bytes:
    return (json.dumps(record, indent=2) + "\n").encode()


def write_cleaned(out: str | Path, csv_bytes: bytes, record: dict) -> Path:
    """The manifest at `out` and review.json beside it (each written whole, then renamed into place). The manifest
    comes last: a write that fails (a full disk) never leaves a new manifest without its review.json."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise UserError(f"--out {out}: give a .csv file name")
    for path, data in ((out.parent / REVIEW_FILE, review_json(record)), (out, csv_bytes)):
        with atomic_path(path) as temporary:
            temporary.write_bytes(data)
    return out.parent / REVIEW_FILE


def build_cleaned(info: dict, samples: pd.DataFrame, decisions: list[Decision], reasons: dict[int, str], *,
                  rules: dict | None = None, csv_name: str = "cleaned.csv",
                  runs_dir: str | Path | None = None) -> tuple[bytes, dict]:
    """The cleaned manifest's CSV bytes and its review.json record: what the Review page downloads and the
    `clean` command writes. runs_dir: where the source run was found (its training command trains there)."""
    csv_bytes = manifest_csv(cleaned_manifest(samples, info["dataset"]["root"], decisions, info.get("superclasses")))
    return csv_bytes, review_record(info, samples, decisions, reasons, csv_bytes, rules=rules, csv_name=csv_name,
                                    runs_dir=runs_dir)


def clean_run(run_dir: str | Path, info: dict, drop_label_issues: float | None, drop_exact_duplicates: bool,
              out: str | Path, merges: dict[str, str] | None = None) -> tuple[Path, str]:
    """`train_cli.py clean`: rule-based decisions from the run's diagnostics, then every image of a merged class
    relabelled to its merged class (`merges`: old -> new, from `merge_map`; a dropped image stays dropped), written
    as `out` plus review.json beside it. Returns the review.json path and what was done (`rules_outcome`)."""
    run_dir = Path(run_dir)
    samples, label_issues = read_table(run_dir, "samples"), read_table(run_dir, "label_issues")
    decisions = rule_decisions(samples, label_issues, drop_label_issues, drop_exact_duplicates)
    reasons = evidence([d.sample_id for d in decisions], label_issues, read_table(run_dir, "duplicates"),
                       read_table(run_dir, "outliers"))
    merged = merge_decisions(samples, merges or {}, {d.sample_id for d in decisions})
    reasons.update(merge_reasons(merged, merges or {}))
    rules = {"drop_label_issues": drop_label_issues, "drop_exact_duplicates": drop_exact_duplicates,
             "merge_classes": merges or None}
    csv_bytes, record = build_cleaned(info, samples, decisions + merged, reasons, rules=rules, csv_name=str(out),
                                      runs_dir=run_dir.parent)
    outcome = rules_outcome(samples, label_issues, drop_label_issues, drop_exact_duplicates, decisions)
    if merged:
        outcome += f"; {len(merged)} images relabelled into " + ", ".join(sorted(set(merges.values())))
    return write_cleaned(out, csv_bytes, record), outcome


def manifest_origin(manifest: str | Path | None) -> dict | None:
    """{source_run, review} when the manifest has a review.json beside it that was written for exactly these
    bytes (its manifest_sha256 matches), else None: an edited manifest or a stale review.json links nothing."""
    if not manifest:
        return None
    manifest = Path(manifest)
    review = manifest.parent / REVIEW_FILE
    try:
        record = json.loads(review.read_text())
        matches = record.get("manifest_sha256") == file_sha256(manifest)
    except (OSError, ValueError, AttributeError):
        return None
    if not matches or not isinstance(record.get("source_run"), str):
        return None
    return {"source_run": record["source_run"], "review": str(review.resolve())}


def review_table(decisions: list[Decision], samples: pd.DataFrame, reasons: dict[int, str]) -> pd.DataFrame:
    """The list as rows to review and edit: sample_id, path, split, label, action, new_label, reason, remove."""
    by_id = samples.set_index("sample_id")
    ids = [d.sample_id for d in decisions]
    return pd.DataFrame({"sample_id": ids, "path": by_id.loc[ids, "path"].to_list(),
                         "split": by_id.loc[ids, "split"].to_list(), "label": by_id.loc[ids, "label"].to_list(),
                         "action": [d.action for d in decisions], "new_label": [d.label for d in decisions],
                         "reason": [reasons.get(i, "") for i in ids], "remove": False})


def decisions_from_table(table: pd.DataFrame) -> tuple[list[Decision], list[str]]:
    """The decisions of an edited review table, rows marked `remove` left out. A relabel to the class the image
    already has is a keep; a relabel without a new class cannot be a decision yet: one line per such row."""
    decisions, problems = [], []
    for row in table[~table["remove"].fillna(False).astype(bool)].to_dict("records"):
        new_label = row["new_label"] if isinstance(row["new_label"], str) and row["new_label"] else None
        action = row["action"] if row["action"] in ACTIONS else "keep"
        if action == "relabel" and new_label is None:
            problems.append(f"#{row['sample_id']}: pick the new class to relabel it to")
            continue
        if action == "relabel" and new_label == row["label"]:
            action = "keep"
        decisions.append(Decision(int(row["sample_id"]), action, new_label if action == "relabel" else None))
    return decisions, problems
