"""Everything the diagnostics read from a run directory, loaded once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.store import run_store


@dataclass
class RunData:
    run_dir: Path
    info: dict                 # run.json
    samples: pd.DataFrame      # in sample_id order
    predictions: pd.DataFrame
    history: pd.DataFrame
    metrics: dict

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    def oof(self) -> pd.DataFrame:
        """The out-of-fold predictions: the one `val` row of every cv sample, in sample_id order."""
        return self.predictions[self.predictions["role"] == "val"].sort_values("sample_id").reset_index(drop=True)

    def test_ensemble(self) -> pd.DataFrame:
        """The test split's predictions by the ensemble of fold models (none of which trained on it)."""
        rows = self.predictions[(self.predictions["model"] == "ensemble") & (self.predictions["role"] == "test")]
        return rows.sort_values("sample_id").reset_index(drop=True)

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray:
        return rows[[f"prob_{c}" for c in self.classes]].to_numpy(np.float64)


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    info = run_store.read_json(run_dir / run_store.RUN_JSON)
    if info.get("schema_version") not in run_store.READABLE_SCHEMA_VERSIONS:
        raise ValueError(f"{run_dir}: schema_version {info.get('schema_version')!r} is not one of "
                         f"{run_store.READABLE_SCHEMA_VERSIONS}")
    samples = pd.read_parquet(run_dir / "samples.parquet").sort_values("sample_id").reset_index(drop=True)
    return RunData(run_dir, info, samples,
                   pd.read_parquet(run_dir / "predictions.parquet"),
                   pd.read_parquet(run_dir / "history.parquet"),
                   run_store.read_json(run_dir / "metrics.json"))
