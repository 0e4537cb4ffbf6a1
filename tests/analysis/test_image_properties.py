"""Image properties: planted dark, blurry and tiny images are flagged; a class that all carries a property is a
high-severity shortcut finding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from core.analysis.diagnostics import run_diagnostics
from core.analysis.diagnostics.image_properties import image_properties, jpeg_quality, measure
from core.analysis.diagnostics.thresholds import Thresholds
from core.store import run_store
from core.testing.synthetic import make_synthetic_run


def texture(seed: int, size: int = 96) -> Image.Image:
    """Coloured blocks with sharp edges: a normal, sharp, mid-bright image."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(40, 220, (size // 8, size // 8, 3), dtype=np.uint8)
    return Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8)))


@pytest.fixture
def planted(tmp_path: Path) -> pd.DataFrame:
    """20 normal images, then a dark, a blurry and a tiny one."""
    images = {f"normal_{i}.png": texture(i) for i in range(20)}
    images["dark.png"] = Image.fromarray((np.asarray(texture(50)) * 0.08).astype(np.uint8))
    images["blurry.png"] = texture(51).filter(ImageFilter.GaussianBlur(6))
    images["tiny.png"] = texture(52).resize((24, 24), Image.NEAREST)
    for name, image in images.items():
        image.save(tmp_path / name)
    samples = pd.DataFrame({"sample_id": np.arange(len(images)), "path": list(images), "label": "a", "split": "cv",
                            "fold": pd.array(np.arange(len(images)) % 3, dtype="Int64")})
    return image_properties(samples, tmp_path, image_size=224, th=Thresholds()).set_index("path")


@pytest.mark.parametrize("flag, image", [("dark", "dark.png"), ("blurry", "blurry.png"), ("tiny", "tiny.png")])
def test_each_planted_image_gets_its_flag_and_no_other_image_does(planted: pd.DataFrame, flag: str,
                                                                  image: str) -> None:
    assert planted.index[planted[flag]].tolist() == [image]


def test_properties_measure_what_they_say(planted: pd.DataFrame) -> None:
    normal = planted.loc["normal_0.png"]
    assert planted.loc["dark.png", "brightness"] < 0.1 < normal["brightness"]
    assert planted.loc["blurry.png", "blur"] < normal["blur"] / 20
    assert planted.loc["tiny.png", "short_side"] == 24 and normal["aspect_ratio"] == 1.0
    assert normal["colourfulness"] > 10 and not planted["odd_aspect"].any()


def test_grey_white_and_jpeg_quality(tmp_path: Path) -> None:
    grey = np.full((60, 120), 255, dtype=np.uint8)
    grey[20:40, 20:60] = 80
    Image.fromarray(grey).save(tmp_path / "grey.jpg", quality=75)
    values = measure(tmp_path / "grey.jpg")
    assert values["colourfulness"] < 2 and values["aspect_ratio"] == 2.0
    assert values["white_share"] == pytest.approx(1 - 800 / 7200, abs=0.05)
    assert values["jpeg_quality"] == pytest.approx(75, abs=2)
    assert np.isnan(jpeg_quality(texture(1)))   # not a JPEG
    assert np.isnan(measure(tmp_path / "missing.png")["brightness"])


def test_a_class_whose_images_are_all_grey_is_a_high_severity_shortcut(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "runs", "20250101-000000-shortcut", 240, 3, 3, 16, diagnostics=False)
    root = Path(run_store.read_json(run / "run.json")["dataset"]["root"])
    for path in (root / "class_b").glob("*.png"):   # planted: class_b alone is greyscale
        Image.open(path).convert("L").convert("RGB").save(path)
    run_diagnostics(run, log=lambda line: None)
    findings = {f["id"]: f for f in run_store.read_json(run / "findings.json")["findings"]}
    shortcut = findings["shortcut:colourfulness"]
    assert shortcut["severity"] == "high" and "class_b" in shortcut["title"]
    assert "class_b images have colourfulness ≤" in shortcut["evidence"] and "other classes" in shortcut["evidence"]
    assert shortcut["target"] == {"page": "Data", "params": {"tab": "properties", "property": "colourfulness"}}
    table = pd.read_parquet(run / "image_properties.parquet")
    assert len(table) == 240 and table["colourfulness"][table["label"] == "class_b"].max() < 1


def test_each_kind_of_flagged_image_is_one_low_data_quality_finding(planted: pd.DataFrame) -> None:
    from core.analysis.diagnostics.findings import image_quality_findings
    from core.analysis.diagnostics.image_properties import summary
    block = summary(planted.reset_index(), {"label": [], "error": []}, image_size=224)
    found = {f["id"]: f for f in image_quality_findings(block, Thresholds())}
    assert "check, fix or remove them" in found["image-quality:tiny"]["evidence"]   # 1 of 23: the exception
    assert set(found) == {"image-quality:dark", "image-quality:blurry", "image-quality:tiny"}
    dark = found["image-quality:dark"]
    assert dark["severity"] == "low" and dark["title"] == ("Data quality: 1 image is dark (mean brightness below "
                                                           "15%)")
    assert "dark.png" in dark["evidence"]
    assert dark["target"] == {"page": "Data", "params": {"tab": "properties", "property": "brightness"}}


def test_when_most_images_are_tiny_the_advice_is_a_smaller_image_size_not_removing_them(tmp_path: Path) -> None:
    """510 of 600 images 40 px on a 224 px input: the input is too large for the dataset, not the images bad."""
    from core.analysis.diagnostics.findings import image_quality_findings
    from core.analysis.diagnostics.image_properties import smaller_image_size, summary
    images = {f"small_{i}.png": texture(i).resize((40, 40)) for i in range(17)}
    images |= {f"large_{i}.png": texture(100 + i) for i in range(3)}
    for name, image in images.items():
        image.save(tmp_path / name)
    samples = pd.DataFrame({"sample_id": np.arange(len(images)), "path": list(images), "label": "a", "split": "cv",
                            "fold": pd.array(np.arange(len(images)) % 3, dtype="Int64")})
    frame = image_properties(samples, tmp_path, image_size=224, th=Thresholds())
    assert frame["tiny"].sum() == 17 and smaller_image_size(frame, 224) == 64   # median 40 px: 64, ResNet's floor
    assert smaller_image_size(frame, 64) is None                                 # nothing smaller to advise
    [tiny] = [f for f in image_quality_findings(summary(frame, {"label": [], "error": []}, image_size=224),
                                                 Thresholds()) if f["id"] == "image-quality:tiny"]
    assert "size, --image-size 64 (this run: 224 px)" in tiny["evidence"] and "remove them." not in tiny["evidence"]


def test_among_many_classes_the_shortcut_class_is_still_found_with_few_trees() -> None:
    """300 classes: only the `shortcut_classes` whose values stand most apart get a one-against-the-rest tree, and
    the class that alone is dark is among them."""
    from core.analysis.diagnostics.image_properties import PROPERTIES, shortcut_checks
    rng = np.random.default_rng(0)
    classes = [f"c{i:03d}" for i in range(300)]
    labels = np.repeat(classes, 6)
    frame = pd.DataFrame({name: rng.normal(0.5, 0.05, len(labels)) for name in PROPERTIES})
    frame["brightness"] = np.where(labels == "c123", 0.05, frame["brightness"])
    frame = frame.assign(sample_id=np.arange(len(labels)), label=labels, split="cv", fold=np.arange(len(labels)) % 3)
    wrong = pd.Series(rng.random(len(labels)) < 0.3, index=frame["sample_id"])
    checks = shortcut_checks(frame, wrong, classes, Thresholds(shortcut_classes=5))
    [brightness] = [row for row in checks["label"] if row["property"] == "brightness"]
    assert brightness["class"] == "c123" and brightness["class_balanced_accuracy"] > 0.9
