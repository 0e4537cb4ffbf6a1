"""`train_cli.py amazon`: metadata and images from a loopback server, with planted faults, become exactly the
valid images, grouped by product, with every failure reported; interrupted builds resume; the result trains."""
from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loopback_server import Answer, LoopbackServer
from PIL import Image
from storage_faults import Faults, leftovers, one_error_line

import train_cli
from core.data.sources.amazon import image_entries, image_id
from core.data.sources.jsonl import json_objects

FAST = ["--timeout", "0.4", "--retries", "2", "--backoff", "0.01", "--max-wait", "2", "--concurrency", "4"]
REPO = Path(__file__).resolve().parents[2]


def jpeg(seed: int, colour: tuple[int, int, int], size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def gif_pixel() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="GIF")
    return buffer.getvalue()


def record(asin: str, images, **extra) -> dict:
    """A record shaped like the real meta_<Category>.jsonl lines."""
    return {"main_category": "All Beauty", "title": f"Product {asin}\nwith a second line", "average_rating": 4.1,
            "rating_number": 12, "features": [], "description": ["A thing."], "price": None, "images": images,
            "videos": [], "store": "Shop", "categories": [], "details": {"Brand": "X"}, "parent_asin": asin,
            "bought_together": None, **extra}


class World:
    """Metadata for two categories and the images they point at, with what a correct build must produce."""

    def __init__(self, server: LoopbackServer):
        self.server = server
        self.rows: dict[str, dict] = {}            # path -> expected manifest row (the valid images)
        self.failures: dict[tuple, str] = {}       # (parent_asin, variant) -> a word the reason must contain
        self.bounds: dict[str, int] = {}           # image path -> most requests allowed
        self.meta: dict[str, bytes] = {}           # file name -> bytes
        self.seed = 0
        self.summary = ""                          # what the build printed

    def url(self, image_id: str, size: str = "large") -> str:
        return f"{self.server.url}/images/I/{image_id}.{'_AC_' if size == 'large' else '_SL1500_'}.jpg"

    def serve(self, url: str, *answers: Answer, bound: int = 1) -> str:
        path = url.removeprefix(self.server.url)
        self.server.routes[path] = list(answers)
        self.bounds[path] = bound
        return url

    def good(self, category: str, asin: str, variant: str, image_id: str, size: str = "large",
             body: bytes | None = None) -> str:
        self.seed += 1
        colour = (200, 60, 60) if category == "Beauty" else (60, 60, 200)
        body = body or jpeg(self.seed, colour)
        url = self.serve(self.url(image_id, size), Answer(200, body))
        self.rows[f"{category}/{asin}_{variant}.jpg"] = {
            "label": category, "group": asin, "url": url, "variant": variant,
            "title": f"Product {asin} with a second line", "sha256": hashlib.sha256(body).hexdigest()}
        return url

    def bad(self, asin: str, image_id: str, word: str, *answers: Answer, bound: int = 1) -> str:
        self.failures[(asin, "MAIN")] = word
        return self.serve(self.url(image_id), *answers, bound=bound)


def plant(server: LoopbackServer, retries: int = 2) -> World:
    world = World(server)
    attempts = retries + 1
    beauty = []
    for i in range(6):
        asin = f"BG{i}"
        main = world.good("Beauty", asin, "MAIN", f"71a+b{i}" if i == 0 else f"MAINB{i}")
        side = world.good("Beauty", asin, "PT01", f"SIDEB{i}")
        beauty.append(record(asin, [{"thumb": main, "large": main, "variant": "MAIN", "hi_res": None},
                                    {"thumb": side, "large": side, "variant": "PT01", "hi_res": None}]))
    beauty.append(beauty[0])                                                            # an exact duplicate record
    swapped = [world.good("Beauty", "BSWAP", v, f"SWAP{v}") for v in ("PT01", "MAIN")]
    beauty.append(record("BSWAP", [{"large": swapped[0], "variant": "PT01", "hi_res": None},
                                   {"large": swapped[1], "variant": "MAIN", "hi_res": None}]))
    retried = world.good("Beauty", "B503", "MAIN", "RETRY")
    server.routes[retried.removeprefix(server.url)].insert(0, Answer(503, b"busy", "text/html",
                                                                      {"Retry-After": "1"}))
    world.bounds[retried.removeprefix(server.url)] = 2
    twin_body = server.routes[beauty[1]["images"][0]["large"].removeprefix(server.url)][0].body
    world.good("Beauty", "BTWIN", "MAIN", "TWIN", body=twin_body)                     # same bytes, other ID
    world.good("Beauty", "BHIRES", "MAIN", "ONLYHI", size="hi_res")
    beauty += [record("B503", [{"large": retried, "variant": "MAIN", "hi_res": None}]),
               record("BTWIN", [{"large": world.rows["Beauty/BTWIN_MAIN.jpg"]["url"], "variant": "MAIN"}]),
               record("BHIRES", [{"large": None, "variant": "MAIN", "hi_res": world.url("ONLYHI", "hi_res")}])]
    faults = {"B404": ("HTTP 404", [Answer(404, b"gone", "text/html")], 1),
              "B500": ("HTTP 500", [Answer(500, b"oops", "text/html")], attempts),
              "BRESET": ("connection failed", [Answer(reset=True)], attempts),
              "BSLOW": ("timed out", [Answer(200, jpeg(0, (0, 0, 0)), delay=1.5)], attempts),
              "BTRUNC": ("truncated", [Answer(200, jpeg(1, (9, 9, 9))[:400])], 1),
              "BHTML": ("text/html", [Answer(200, b"<html><body>Sorry</body></html>", "text/html")], 1),
              "BPIXEL": ("placeholder", [Answer(200, gif_pixel(), "image/gif")], 1)}
    for asin, (word, answers, bound) in faults.items():
        url = world.bad(asin, f"ID{asin}", word, *answers, bound=bound)
        beauty.append(record(asin, [{"thumb": url, "large": url, "variant": "MAIN", "hi_res": None}]))
    taken = beauty[1]["images"][0]["large"]                                            # BG1's MAIN, again
    beauty += [record("BDUPID", [{"large": taken, "variant": "MAIN", "hi_res": None}]), record("BNOIMG", [])]
    world.meta["meta_Beauty.jsonl.gz"] = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in beauty))

    music = []
    for i in range(6):  # the `datasets` export shape: a dict of lists
        asin = f"MG{i}"
        main = world.good("Music", asin, "MAIN", f"MAINM{i}")
        hires = world.good("Music", asin, "PT01", f"HIM{i}", size="hi_res")
        music.append(record(asin, {"thumb": [main, None], "large": [main, None], "variant": ["MAIN", "PT01"],
                                   "hi_res": [None, hires]}, main_category="Digital Music"))
    lines = [json.dumps(r).encode() for r in music]
    lines.insert(3, b'{"parent_asin": "broken')                                          # a malformed line
    world.meta["meta_Music.jsonl"] = b"\n".join(lines) + b"\n"
    for name, data in world.meta.items():
        world.serve(f"{server.url}/meta/{name}", Answer(200, data, "application/octet-stream"), bound=1)
    return world


def read_manifest(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row.pop("path"): row for row in csv.DictReader(handle)}


def amazon(*args: str) -> int:
    return train_cli.main(["amazon", *args])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build of every image (--images all) from metadata served over HTTP."""
    out = tmp_path_factory.mktemp("amazon") / "out"
    with LoopbackServer() as server:
        world = plant(server)
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            code = amazon("--categories", "Beauty,Music", "--meta", f"{server.url}/meta", "--out", str(out),
                          "--images", "all", *FAST)
        world.summary = printed.getvalue()
        yield code, out, world


def test_the_build_holds_exactly_the_valid_images_grouped_by_product(built):
    code, out, world = built
    assert code == 0
    assert read_manifest(out / "manifest.csv") == world.rows
    for path, row in world.rows.items():
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == row["sha256"]
    images = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert images == set(world.rows) | {"manifest.csv", "build.json"}   # no temporary or rejected file left


def test_every_failure_is_listed_with_its_reason(built):
    _, out, world = built
    failures = json.loads((out / "build.json").read_text())["failures"]
    assert {(f["parent_asin"], f["variant"]) for f in failures} == set(world.failures)
    for failure in failures:
        assert world.failures[(failure["parent_asin"], failure["variant"])] in failure["reason"]
        assert failure["url"].endswith(f"ID{failure['parent_asin']}._AC_.jpg")


def test_no_request_is_repeated_beyond_its_retries(built):
    _, _, world = built
    for path, bound in world.bounds.items():
        assert 1 <= world.server.requests[path] <= bound, path
    assert world.server.requests["/images/I/RETRY._AC_.jpg"] == 2    # the 503 was retried after Retry-After


def test_build_json_records_the_command_counts_duplicates_and_identical_images(built):
    _, out, world = built
    info = json.loads((out / "build.json").read_text())
    assert info["command"][:3] == ["python", "train_cli.py", "amazon"] and "--images" in info["command"]
    beauty, music = info["classes"]["Beauty"], info["classes"]["Music"]
    assert (beauty["duplicate_records"], beauty["duplicate_image_ids"], beauty["without_images"]) == (1, 1, 2)
    assert beauty["eligible_products"] == beauty["asked"] == 6 + 4 + 7
    assert (beauty["obtained"], beauty["images"], beauty["failed_images"]) == (10, 17, 7)
    assert (music["malformed_lines"], music["obtained"], music["images"]) == (1, 6, 12)
    assert [(d["parent_asin"], d["kept_for"]) for d in info["duplicate_image_ids"]] == [("BDUPID", "BG1")]
    assert [sorted(i["groups"]) for i in info["identical_images"]] == [["BG1", "BTWIN"]]


def test_the_summary_fits_one_screen_and_says_how_to_train(built):
    _, out, world = built
    lines = world.summary.splitlines()
    assert 10 <= len(lines) <= 30
    assert all(world.failures[key] in world.summary or key == ("BHTML", "MAIN") for key in world.failures)
    assert f"--data {out / 'manifest.csv'}" in world.summary and "HTTP 404" in world.summary


def test_the_built_folder_trains_and_keeps_each_product_on_one_side(built, tmp_path):
    _, out, _ = built
    code = train_cli.main(["--data", str(out / "manifest.csv"), "--folds", "2", "--weights", "none",
                           "--image-size", "32", "--epochs", "1", "--train-mode", "head", "--batch-size", "8",
                           "--runs-dir", str(tmp_path / "runs")])
    assert code == 0
    samples = pd.read_parquet(next((tmp_path / "runs").iterdir()) / "samples.parquet")
    assert len(samples) == 29 and samples.group.notna().all()
    sides = samples.groupby("group")[["split", "fold"]].nunique(dropna=False)   # test rows have no fold
    assert (sides == 1).all().all() and samples.split.nunique() == 2 and samples.fold.nunique() == 2


def test_main_images_from_local_files_sampled_reproducibly_with_top_up(tmp_path):
    with LoopbackServer() as server:
        world = plant(server)
        for name, data in world.meta.items():
            (tmp_path / "meta" / name).parent.mkdir(exist_ok=True)
            (tmp_path / "meta" / name).write_bytes(data)
        options = ["--categories", "Beauty,Music", "--meta", str(tmp_path / "meta"), "--size", "hi_res",
                   "--seed", "3", *FAST]
        assert amazon(*options, "--out", str(tmp_path / "a"), "--per-class", "4") == 0
        assert amazon(*options, "--out", str(tmp_path / "b"), "--per-class", "6") == 0
    first = read_manifest(tmp_path / "a" / "manifest.csv")
    second = read_manifest(tmp_path / "b" / "manifest.csv")
    info = json.loads((tmp_path / "b" / "build.json").read_text())
    # 6 of Beauty's 17 products asked; the ones whose image fails are replaced by the next in the sample
    beauty = info["classes"]["Beauty"]
    assert (beauty["asked"], beauty["obtained"]) == (6, 6) and beauty["failed_images"] > 0
    assert sum(row["label"] == "Beauty" for row in second.values()) == 6
    assert all(row["variant"] == "MAIN" for row in second.values())
    assert set(second) <= set(world.rows)
    # --size hi_res falls back to large where there is no hi_res
    assert second.get("Beauty/BHIRES_MAIN.jpg", {"url": "_SL1500_"})["url"].endswith("_SL1500_.jpg")
    assert all(row["url"].endswith("_AC_.jpg") for path, row in second.items() if "BHIRES" not in path)
    # the same seed samples the same products first, whatever --per-class
    beauty_a = {r["group"] for r in first.values() if r["label"] == "Beauty"}
    beauty_b = {r["group"] for r in second.values() if r["label"] == "Beauty"}
    assert len(beauty_a) == 4 and beauty_a < beauty_b


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("case, words", [
    ("missing folder", "no such folder"),
    ("missing category file", "did you mean Beauty"),
    ("url not answering", "no usable answer"),
    ("category not on the server", "neither meta_Bauty.jsonl.gz nor meta_Bauty.jsonl"),
    ("per-class too large", "Music has 6 products with an image; ask for at most 6"),
    ("truncated gzip file", "the gzip stream ends early"),
    ("not a metadata file", "holds no product records"),
    ("no product with enough ratings", "has an image URL and at least 100 ratings"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, case, words):
    with LoopbackServer() as server:
        world = plant(server)
        (tmp_path / "meta").mkdir()
        (tmp_path / "meta" / "meta_Beauty.jsonl.gz").write_bytes(world.meta["meta_Beauty.jsonl.gz"])
        (tmp_path / "meta" / "meta_Cut.jsonl.gz").write_bytes(world.meta["meta_Beauty.jsonl.gz"][:-40])
        (tmp_path / "meta" / "meta_Page.jsonl").write_text("<html><body>Not found</body></html>\n")
        meta, category, *options = {
            "missing folder": (str(tmp_path / "nowhere"), "Beauty"),
            "missing category file": (str(tmp_path / "meta"), "Beuty"),
            "url not answering": (closed_port_url(), "Beauty"),
            "category not on the server": (f"{server.url}/meta", "Bauty"),
            "per-class too large": (f"{server.url}/meta", "Beauty,Music", "--per-class", "7"),
            "truncated gzip file": (str(tmp_path / "meta"), "Beauty,Cut"),
            "not a metadata file": (str(tmp_path / "meta"), "Page"),
            "no product with enough ratings": (f"{server.url}/meta", "Beauty", "--min-ratings", "100"),
        }[case]
        code = amazon("--categories", category, "--meta", meta, *options, "--out", str(tmp_path / "out"), *FAST)
    err = capsys.readouterr().err.strip().split("\r")[-1]   # after any progress bar (a terminal hides them)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and words in err
    assert not (tmp_path / "out").exists()


def test_an_interrupted_build_resumes_to_the_same_manifest_without_downloading_twice(tmp_path):
    with LoopbackServer() as server:
        world = plant(server)
        for row in world.rows.values():   # slow enough to interrupt mid-way
            server.routes[row["url"].removeprefix(server.url)][-1].delay = 0.15
        options = ["--categories", "Beauty,Music", "--meta", f"{server.url}/meta", "--images", "all", *FAST,
                   "--concurrency", "1"]
        environment = {**os.environ, "PYTHONPATH": str(REPO)}
        process = subprocess.Popen([sys.executable, str(REPO / "train_cli.py"), "amazon", *options,
                                    "--out", str(tmp_path / "resumed")], env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(list((tmp_path / "resumed").glob("*/*.jpg"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        before = {p.relative_to(tmp_path / "resumed").as_posix() for p in (tmp_path / "resumed").glob("*/*.jpg")}
        assert 4 <= len(before) < len(world.rows)
        assert not (tmp_path / "resumed" / "manifest.csv").exists()        # nothing passes for complete

        assert amazon(*options, "--out", str(tmp_path / "resumed")) == 0
        for path in before:   # one request each (two for the image first answered with 503)
            url_path = world.rows[path]["url"].removeprefix(server.url)
            assert server.requests[url_path] == world.bounds[url_path], path
        assert amazon(*options, "--out", str(tmp_path / "whole"), "--concurrency", "4") == 0
    resumed = (tmp_path / "resumed" / "manifest.csv").read_text()
    assert resumed == (tmp_path / "whole" / "manifest.csv").read_text()
    assert read_manifest(tmp_path / "resumed" / "manifest.csv") == world.rows


@pytest.mark.parametrize("chunk", [5, 4096, 1 << 24])
def test_metadata_streams_gzip_or_plain_in_any_chunking(chunk):
    lines = [json.dumps({"parent_asin": f"A{i}", "pad": "x" * 3000}).encode() for i in range(500)]
    plain = b"\n".join(lines[:300]) + b"\n\n" + b"\n".join(lines[300:])      # a blank line, no final newline
    packed = gzip.compress(b"\n".join(lines[:300]) + b"\n") + gzip.compress(b"\n".join(lines[300:]))  # 2 members
    for data in (plain, packed):
        records = list(json_objects(data[i:i + chunk] for i in range(0, len(data), chunk)))
        assert [r["parent_asin"] for r in records] == [f"A{i}" for i in range(500)]


def test_both_image_shapes_read_the_same_and_ids_keep_their_plus():
    listed = [{"thumb": "t1", "large": "l1", "variant": "MAIN", "hi_res": None},
              {"thumb": "t2", "large": "l2", "variant": "PT01", "hi_res": "h2"}]
    columns = {"thumb": ["t1", "t2"], "large": ["l1", "l2"], "variant": ["MAIN", "PT01"], "hi_res": [None, "h2"]}
    assert image_entries(listed) == image_entries(columns) == image_entries(json.dumps(columns)) == listed
    assert image_entries(None) == image_entries("not json") == []
    assert image_id("https://m.media-amazon.com/images/I/71a+bC9L._SL1500_.jpg") == "71a+bC9L"
    assert image_id("https://m.media-amazon.com/images/I/71a%2BbC9L.jpg") == "71a+bC9L"


def test_ctrl_c_stops_at_once_even_while_waiting_out_a_retry_after(tmp_path):
    with LoopbackServer() as server:
        world = plant(server)
        for row in world.rows.values():
            server.routes[row["url"].removeprefix(server.url)] = [Answer(503, headers={"Retry-After": "30"})]
        process = subprocess.Popen(
            [sys.executable, str(REPO / "train_cli.py"), "amazon", "--categories", "Music", "--meta",
             f"{server.url}/meta", "--out", str(tmp_path / "out"), *FAST, "--max-wait", "60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},   # SIGABRT prints every thread's stack
            # Ctrl-C as in a terminal: a job a shell started in the background inherits SIGINT ignored, and
            # Python then installs no KeyboardInterrupt handler
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while sum(n for path, n in server.requests.items() if path.startswith("/images/")) < 4 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:   # say where it hangs, not only that it does
            process.send_signal(signal.SIGABRT)
            _, err = process.communicate()
            raise AssertionError(f"still running 20 s after Ctrl-C; where its threads were:\n{err[-4000:]}") from None
    assert process.returncode == 130 and time.monotonic() - interrupted < 5
    assert "rerun the same command to resume" in err and not (tmp_path / "out" / "manifest.csv").exists()
    assert "train_cli.py amazon --categories Music" in err   # the command itself, to copy


def test_a_build_prints_its_progress_per_category_and_leaves_no_heartbeat(tmp_path, capsys):
    with LoopbackServer() as server:
        plant(server)
        assert amazon("--categories", "Beauty,Music", "--meta", f"{server.url}/meta", "--out", str(tmp_path / "out"),
                      "--images", "all", *FAST, "--progress-every", "0") == 0
    lines = capsys.readouterr().err.splitlines()
    assert "Beauty: 10 of 17 products, 17 images, 7 failed" in next(line for line in lines if line.endswith(" done"))
    assert any(line.startswith("Music: 6 of ") and " images/s)" in line for line in lines)
    assert sum(line.startswith("Beauty: ") for line in lines) > 10   # after every product tried, and when done
    assert not list((tmp_path / "out").glob("heartbeat*"))   # the writer ended: nothing reads as stalled


def test_a_full_disk_during_downloads_is_one_line_and_the_rerun_finishes_the_same_build(tmp_path, monkeypatch,
                                                                                          capsys):
    faults = Faults(monkeypatch)
    with LoopbackServer() as server:
        world = plant(server)
        options = ["--categories", "Beauty,Music", "--meta", f"{server.url}/meta", "--images", "all", *FAST,
                   "--out", str(tmp_path / "out")]
        faults.fill_at(lambda path: path.suffix == ".jpg")
        assert amazon(*options) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: no space left writing {tmp_path / 'out'}/") and ".jpg (" in line
        assert not (tmp_path / "out" / "manifest.csv").exists() and not (tmp_path / "out" / "build.json").exists()
        assert not leftovers(tmp_path / "out")
        faults.free()
        assert amazon(*options) == 0
    assert read_manifest(tmp_path / "out" / "manifest.csv") == world.rows


def test_label_level_labels_by_the_category_path_with_the_file_category_as_superclass(tmp_path):
    """--label-level 2: Kitchen and Bath under Home, Puzzles under Toys; a path one entry long is left out, and a
    sub-category under both files becomes one class per file; the manifest trains with its hierarchy."""
    paths = {"Home": {"H1": ["Home", "Kitchen"], "H2": ["Home", "Bath"], "H3": ["Home"], "H4": ["Home", "Accessories"]},
             "Toys": {"T1": ["Toys", "Puzzles"], "T2": ["Toys", "Accessories"]}}
    with LoopbackServer() as server:
        world = World(server)
        for category, products in paths.items():
            records = []
            for asin, path in products.items():
                url = world.good(category, asin, "MAIN", f"ID{asin}")
                records.append(record(asin, [{"large": url, "variant": "MAIN", "hi_res": None}], categories=path))
            (tmp_path / "meta").mkdir(exist_ok=True)
            (tmp_path / "meta" / f"meta_{category}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            assert amazon("--categories", "Home,Toys", "--meta", str(tmp_path / "meta"), "--out",
                          str(tmp_path / "out"), "--label-level", "2", *FAST) == 0
    rows = read_manifest(tmp_path / "out" / "manifest.csv")
    assert {path: (row["label"], row["superclass"]) for path, row in rows.items()} == {
        "Home/H1_MAIN.jpg": ("Kitchen", "Home"), "Home/H2_MAIN.jpg": ("Bath", "Home"),
        "Home/H4_MAIN.jpg": ("Home / Accessories", "Home"), "Toys/T1_MAIN.jpg": ("Puzzles", "Toys"),
        "Toys/T2_MAIN.jpg": ("Toys / Accessories", "Toys")}
    info = json.loads((tmp_path / "out" / "build.json").read_text())
    assert info["classes"]["Home"]["without_category_level"] == 1
    assert "1 products without a category level 2" in printed.getvalue()
    from core.data.dataset import scan_dataset
    assert scan_dataset(tmp_path / "out" / "manifest.csv").superclasses == {
        "Bath": "Home", "Home / Accessories": "Home", "Kitchen": "Home", "Puzzles": "Toys",
        "Toys / Accessories": "Toys"}
