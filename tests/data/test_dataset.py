"""Scanning: every common format and mode becomes RGB; every kind of bad file is skipped with a reason."""
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import make_folder_dataset
from PIL import Image

from core.data.dataset import decode_bytes, scan_dataset
from core.errors import UserError


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_each_format_decodes_to_rgb(fmt):
    image = decode_bytes(encoded(Image.new("RGB", (20, 10), (10, 200, 30)), fmt))
    assert image.mode == "RGB" and image.size == (20, 10)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "LA"])
def test_each_mode_becomes_rgb(mode):
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    assert decode_bytes(encoded(Image.new(mode, (8, 8)), fmt)).mode == "RGB"


def test_transparent_pixels_are_put_on_white():
    image = decode_bytes(encoded(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG"))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_grey_keeps_its_brightness():
    grey = Image.fromarray(np.full((4, 4), 65535 // 2, dtype=np.uint16))
    assert decode_bytes(encoded(grey, "PNG")).getpixel((0, 0))[0] in (127, 128)


def test_gif_reads_its_first_frame():
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 0, 255)]]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    red, green, blue = decode_bytes(data).getpixel((0, 0))
    assert red > 200 and blue < 50


def plant_bad_files(class_dir: Path) -> dict[str, str]:
    """Each kind of unusable file, with a word its skip reason must contain."""
    good = encoded(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    (class_dir / "empty.jpg").write_bytes(b"")
    (class_dir / "notes.txt").write_text("not an image")
    (class_dir / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (class_dir / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    bomb = Image.new("L", (12000, 12000))  # 144 MP > 2 x PIL's default limit when saved
    (class_dir / "bomb.png").write_bytes(encoded(bomb, "PNG"))
    (class_dir / ".hidden.jpg").write_bytes(good)
    (class_dir / "pixel.gif").write_bytes(encoded(Image.new("RGB", (1, 1)), "GIF"))
    return {"empty.jpg": "empty", "notes.txt": "not an image", "truncated.jpg": "truncated",
            "garbage.png": "", "bomb.png": "bomb", "pixel.gif": "placeholder"}


def test_bad_files_are_skipped_with_their_reason_and_the_rest_is_kept(tmp_path):
    root = make_folder_dataset(tmp_path / "data")
    expected = plant_bad_files(root / "apple")
    dataset = scan_dataset(root)
    skipped = {Path(s["path"]).name: s["reason"] for s in dataset.skipped}
    assert set(skipped) == set(expected)
    for name, word in expected.items():
        assert word in skipped[name]
    assert len(dataset.samples) == 18 and dataset.classes == ["apple", "leaf", "sky"]
    assert not dataset.samples.path.str.contains("hidden").any()


def test_manifest_paths_are_relative_to_the_csv_and_missing_files_are_skipped(csv_dataset):
    with open(csv_dataset, "a") as handle:
        handle.write("images/gone.jpg,apple,apple-g9\n")
    dataset = scan_dataset(csv_dataset)
    assert dataset.root == csv_dataset.parent.resolve() and dataset.has_groups
    assert dataset.skipped == [{"path": "images/gone.jpg", "reason": "file not found"}]
    assert dataset.samples.sha256.str.len().eq(64).all()


def test_manifest_without_label_column_is_refused_by_name(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,class\na.jpg,x\n")
    with pytest.raises(UserError, match="missing column"):
        scan_dataset(manifest)


def test_missing_data_path_is_refused(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        scan_dataset(tmp_path / "nope")


def test_manifest_may_point_outside_its_folder_and_the_root_becomes_the_common_folder(tmp_path):
    from conftest import make_image
    make_image(tmp_path / "photos" / "a.png", (200, 0, 0), seed=1)
    make_image(tmp_path / "photos" / "b.png", (0, 200, 0), seed=2)
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / "m.csv"
    manifest.write_text(f"path,label\n../photos/a.png,red\n{tmp_path / 'photos' / 'b.png'},green\n")
    dataset = scan_dataset(manifest)
    assert dataset.root == tmp_path and sorted(dataset.samples.path) == ["photos/a.png", "photos/b.png"]


def test_a_run_names_the_manifest_it_was_given_not_only_the_folder_of_its_images(tmp_path, capsys):
    """A cleaned manifest saved in downloads/ lists images elsewhere: the log says which CSV was read."""
    from conftest import make_csv_dataset

    from core.config import RunConfig
    from core.run import lifecycle as run_lifecycle
    from core.store import run_store
    images = make_csv_dataset(tmp_path / "data").parent
    manifest = tmp_path / "downloads" / "cleaned.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,label\n" + "".join(f"{p},{p.stem.rsplit('_', 1)[0]}\n"
                                                 for p in sorted((images / "images").iterdir())))
    run = run_lifecycle.start_run(RunConfig(data=str(manifest), runs_dir=str(tmp_path / "runs"), weights="none",
                                            image_size=32, folds=2, test_size=0))
    root = run_store.read_json(run / "run.json")["dataset"]["root"]
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("data: ")]
    assert line == f"data: 24 images in 3 classes from {manifest} (images under {root})"


def with_superclasses(csv_path: Path, superclass: dict[str, str], rows: int | None = None) -> Path:
    """The manifest with a superclass column filled from `superclass` by label (the first `rows` rows only)."""
    import pandas as pd
    table = pd.read_csv(csv_path)
    table["superclass"] = [superclass.get(label, "") if rows is None or i < rows else ""
                           for i, label in enumerate(table["label"])]
    table.to_csv(csv_path, index=False)
    return csv_path


def test_a_superclass_column_maps_every_class_to_its_superclass(csv_dataset, tmp_path):
    dataset = scan_dataset(with_superclasses(csv_dataset, {"apple": "food", "leaf": "nature", "sky": "nature"}))
    assert dataset.superclasses == {"apple": "food", "leaf": "nature", "sky": "nature"}
    assert scan_dataset(make_folder_dataset(tmp_path / "folder")).superclasses is None   # a folder has no hierarchy


def test_without_superclass_values_there_is_no_hierarchy_and_empty_cells_take_their_class_s(csv_dataset):
    assert scan_dataset(with_superclasses(csv_dataset, {})).superclasses is None
    # only the first row of each class carries it (rows are by class, 8 each)
    table_path = with_superclasses(csv_dataset, {"apple": "food", "leaf": "nature", "sky": "nature"})
    import pandas as pd
    table = pd.read_csv(table_path, keep_default_na=False)
    table.loc[table.index % 8 != 0, "superclass"] = ""
    table.to_csv(table_path, index=False)
    assert scan_dataset(table_path).superclasses["leaf"] == "nature"


@pytest.mark.parametrize("mapping, message", [
    ({"apple": "food", "leaf": "nature"}, "class 'sky' has no superclass"),
    (None, "class 'leaf' has two superclasses, 'green' and 'nature'"),
])
def test_a_class_without_or_with_two_superclasses_is_refused_in_one_line(csv_dataset, mapping, message):
    import pandas as pd
    if mapping is None:
        with_superclasses(csv_dataset, {"apple": "food", "leaf": "nature", "sky": "nature"})
        table = pd.read_csv(csv_dataset, keep_default_na=False)
        table.loc[table.index[table["label"] == "leaf"][-1], "superclass"] = "green"
        table.to_csv(csv_dataset, index=False)
    else:
        with_superclasses(csv_dataset, mapping)
    with pytest.raises(UserError) as error:
        scan_dataset(csv_dataset)
    assert message in str(error.value) and str(csv_dataset) in str(error.value) and "\n" not in str(error.value)
