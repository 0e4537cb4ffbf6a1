"""The HTTP API over a run's fold models: answers, hostile input, the token, and a real uvicorn process."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from use_fixtures import huge_png, tiny_runs  # noqa: F401  (session fixture)

import train_cli
from bench.browser_harness import free_port
from core.delivery import predict, serve, serve_settings
from core.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def png(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def ensemble(tiny_runs):  # noqa: F811
    return predict.load_ensemble(tiny_runs["head"])


def client_for(ensemble, run: Path, **settings) -> TestClient:
    metrics = json.loads((run / "metrics.json").read_text())
    return TestClient(serve.create_app(ensemble, metrics, serve.ServeSettings(**settings)))


@pytest.fixture(scope="module")
def client(ensemble, tiny_runs):  # noqa: F811
    return client_for(ensemble, tiny_runs["head"], max_file_bytes=200_000, max_files=3, max_pixels=1_000_000)


def test_health_and_model_card(client, tiny_runs):  # noqa: F811
    run = tiny_runs["head"]
    assert client.get("/health").json() == {"status": "ok", "run_id": run.name}
    card = client.get("/model").json()
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["classes"] == ["apple", "leaf", "sky"] and card["architecture"]["name"] == "resnet50"
    assert card["weights"]["source"] == "none" and card["train_mode"] == "head" and card["folds"] == [0, 1]
    assert card["validation"]["out_of_fold"]["balanced_accuracy"] == metrics["oof"]["val"]["balanced_accuracy"]
    assert card["test_ensemble"]["accuracy"] == metrics["ensemble"]["test"]["accuracy"]
    assert card["limits"]["max_files"] == 3 and card["limits"]["max_batch"] == 1  # CPU: no sharing by default
    assert "/predict" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("docs, expected", [("/docs", "SwaggerUIBundle"), ("/redoc", "<redoc")])
def test_api_documentation_pages_load_every_script_from_the_server_itself_not_a_cdn(client, docs, expected):
    """A machine without internet (or a browser behind a strict proxy) still gets working documentation."""
    page = client.get(docs)
    assert page.status_code == 200 and expected in page.text
    links = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert len(links) >= 3 and all(link.startswith("/") for link in links), links  # script, icon, the spec
    for link in links:
        answer = client.get(link)
        assert answer.status_code == 200 and len(answer.content) > 100, link


def test_predict_answers_every_image_of_a_request_like_the_cli_path(client, ensemble):
    images = {"red.png": png((200, 30, 30)), "green.png": png((30, 160, 40)), "blue.jpg": png((40, 90, 220))}
    response = client.post("/predict", files=[("files", (name, data, "image/png")) for name, data in images.items()])
    assert response.status_code == 200
    answer = response.json()
    assert [p["filename"] for p in answer["predictions"]] == list(images)
    expected = predict.classify(ensemble, [predict.decode(data) for data in images.values()])
    for row, probs in zip(answer["predictions"], expected):
        got = [row["probabilities"][c] for c in ensemble.classes]
        # the server forwards one image at a time on a CPU, the CLI path all three together: float32 kernels for
        # other batch shapes sum in another order, so the last digits differ (4e-6 seen here)
        np.testing.assert_allclose(got, probs, atol=2e-5)
        assert row["prediction"] == ensemble.classes[int(np.argmax(probs))] and row["top"][0]["label"] == row[
            "prediction"]


@pytest.mark.parametrize("files, status, detail", [
    ([("files", ("notes.txt", b"hello", "text/plain"))], 400, "notes.txt: not an image (format not recognised)"),
    ([("files", ("empty.png", b"", "image/png"))], 400, "empty.png: unreadable: empty file"),
    ([("files", ("cut.png", png()[:60], "image/png"))], 400, "cut.png: "),
    ([("files", ("big.png", png(size=(2000, 1000)), "image/png"))], 400, "big.png: decompression bomb refused"),
    ([("files", ("huge.png", huge_png(), "image/png"))], 400, "huge.png: decompression bomb refused"),
    ([("files", ("<script>alert(1)</script>.png", b"x", "image/png"))], 400,
     "<script>alert(1)</script>.png: not an image"),   # JSON, never HTML: the name comes back as a string
    ([("files", ("noise.bmp", b"BM" + bytes(300_000), "image/bmp"))], 413, "noise.bmp: larger than the limit"),
    ([("files", (f"{i}.png", png(), "image/png")) for i in range(4)], 413, "4 files: at most 3 per request"),
])
def test_bad_uploads_get_a_clear_4xx_and_the_server_keeps_serving(client, files, status, detail):
    response = client.post("/predict", files=files)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert client.post("/predict", files=[("files", ("ok.png", png(), "image/png"))]).status_code == 200


def test_an_empty_or_non_multipart_body_is_refused(client):
    for response in (client.post("/predict"), client.post("/predict", json={"image": "abc"}),
                     client.post("/predict", content=b"", headers={"content-type": "multipart/form-data; boundary=x"})):
        assert response.status_code == 400
        assert "no images" in response.json()["detail"] or "parsing the body" in response.json()["detail"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    response = client.post("/predict", content=b"x" * 1_000_000,
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]


def test_a_token_is_required_and_checked_when_set(ensemble, tiny_runs):  # noqa: F811
    client = client_for(ensemble, tiny_runs["head"], token="s3cret-token")
    upload = [("files", ("ok.png", png(), "image/png"))]
    assert client.get("/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
        assert client.get("/model", headers=headers).status_code == 401
        response = client.post("/predict", files=upload, headers=headers)
        assert response.status_code == 401 and "bearer token" in response.json()["detail"]
    good = {"Authorization": "Bearer s3cret-token"}
    assert client.get("/model", headers=good).status_code == 200
    assert client.post("/predict", files=upload, headers=good).status_code == 200


def test_each_prediction_has_its_set_and_calibrated_confidence_when_sets_are_on(ensemble, tiny_runs):  # noqa: F811
    from core.analysis.confidence import load_confidence
    confidence = load_confidence(tiny_runs["head"], ensemble.classes, 0.8, class_conditional=True)
    app = serve.create_app(ensemble, None, serve.ServeSettings(), confidence)
    images = [png((200, 30, 30)), png((30, 160, 40))]
    answer = TestClient(app).post("/predict", files=[("files", (f"{i}.png", data, "image/png"))
                                                     for i, data in enumerate(images)]).json()
    assert answer["coverage"] == 0.8 and answer["class_conditional"] is True
    probs = predict.classify(ensemble, [predict.decode(data) for data in images])
    assert [p["prediction_set"] for p in answer["predictions"]] == confidence.labels(confidence.sets(probs), probs)
    for item, calibrated in zip(answer["predictions"], confidence.calibrated(probs).max(1)):
        assert item["prediction_set"][0] == item["prediction"]
        assert item["calibrated_confidence"] == pytest.approx(calibrated, rel=1e-5)
    card = TestClient(app).get("/model").json()["prediction_sets"]
    assert card["coverage"] == 0.8 and card["n_calibration"] == confidence.n_calibration
    assert card["always_in_sets"] == confidence.always_in()


def test_a_bad_coverage_is_refused_before_the_models_load(tiny_runs, capsys):  # noqa: F811
    run = tiny_runs["head"]
    assert train_cli.main(["serve", run.name, "--coverage", "1", "--runs-dir", str(run.parent)]) == 2
    assert capsys.readouterr().err.startswith("error: --coverage 1: give the share")
    assert train_cli.main(["serve", run.name, "--set-method", "raps", "--raps-lambda", "-0.5",
                           "--runs-dir", str(run.parent)]) == 2
    assert capsys.readouterr().err.strip() == "error: --raps-lambda -0.5: give a penalty of 0 or more (e.g. 0.05)"


def test_a_public_address_needs_a_token(tiny_runs, capsys, monkeypatch):  # noqa: F811
    monkeypatch.delenv(serve_settings.TOKEN_ENV, raising=False)
    run = tiny_runs["head"]
    assert train_cli.main(["serve", run.name, "--host", "0.0.0.0", "--runs-dir", str(run.parent)]) == 2
    assert serve_settings.TOKEN_ENV in capsys.readouterr().err


def test_a_real_uvicorn_process_serves_valid_and_hostile_requests(tiny_runs):  # noqa: F811
    run = tiny_runs["finetune"]
    port = free_port()
    env = {**os.environ, serve_settings.TOKEN_ENV: "tok"}
    command = [sys.executable, "train_cli.py", "serve", run.name, "--port", str(port), "--runs-dir", str(run.parent),
               "--max-file-mb", "0.1", "--max-files", "2"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer tok"}
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        else:
            pytest.fail(f"server did not start: {process.stdout.read1(4000).decode()}")
        with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
            hostile = [http.post("/predict", files=[("files", ("x.txt", b"#!/bin/sh", "text/plain"))]),
                       http.post("/predict", content=b"x" * 2_000_000,
                                 headers={"content-type": "multipart/form-data; boundary=x"}),
                       http.post("/predict")]
            assert [r.status_code for r in hostile] == [400, 413, 400]
            answers = [http.post("/predict", files=[("files", (f"{i}.png", png((60 * i, 90, 200)), "image/png"))])
                       for i in range(3)]
            assert all(r.status_code == 200 for r in answers)
            assert {r.json()["predictions"][0]["prediction"] for r in answers} <= {"apple", "leaf", "sky"}
            assert all(r.json()["coverage"] == 0.9 and r.json()["predictions"][0]["prediction_set"] for r in answers)
            assert httpx.get(f"{url}/model", timeout=5).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("n, largest, sizes", [(13, 32, [8, 4, 1]), (40, 32, [32, 8]), (7, 4, [4, 2, 1]),
                                               (5, 6, [4, 1]), (3, 1, [1, 1, 1]), (0, 8, [])])
def test_a_batch_runs_as_power_of_two_forward_passes(n, largest, sizes):
    assert serve.batch_sizes(n, largest) == sizes


def test_requests_that_arrive_while_the_model_is_busy_share_the_next_batch(ensemble, monkeypatch):
    calls, release = [], threading.Event()

    batcher = serve.Batcher(ensemble, max_images=32, tta=False)
    forward = batcher.forward

    def recording(inputs):
        calls.append(len(inputs))
        if len(calls) == 1:
            release.wait(30)  # the first batch is "running" while the others arrive
        return forward(inputs)

    monkeypatch.setattr(batcher, "forward", recording)
    pictures = [predict.decode(png((40 * i, 90, 200))) for i in range(4)]
    images = [predict.preprocess(ensemble, picture) for picture in pictures]
    first = batcher.submit(images[:1])
    while not calls:
        time.sleep(0.01)
    later = [batcher.submit(images[1:3]), batcher.submit(images[3:])]
    release.set()
    results = [first.result(30), *(future.result(30) for future in later)]
    assert calls == [1, 3]
    expected = predict.classify(ensemble, pictures)
    np.testing.assert_allclose(np.concatenate([result.probs for result in results]), expected, atol=1e-4)  # batch composition: float noise


def test_every_answer_carries_the_ood_score_and_an_image_out_of_distribution_says_so(ensemble, tiny_runs):  # noqa: F811
    upload = [("files", ("red.png", png((200, 30, 30)), "image/png"))]
    answer = client_for(ensemble, tiny_runs["head"]).post("/predict", files=upload).json()["predictions"][0]
    embeddings = []
    predict.classify(ensemble, [predict.decode(upload[0][1][1])], embeddings=embeddings)
    assert answer["ood_score"] == pytest.approx(predict.ood_scores(ensemble, embeddings)[0], abs=1e-4)  # as predict
    assert answer["ood_threshold"] == ensemble.ood.threshold
    assert answer["out_of_distribution"] == (answer["ood_score"] > answer["ood_threshold"])
    strict = dataclasses.replace(ensemble, ood=dataclasses.replace(ensemble.ood, threshold=-1.0))
    client = client_for(strict, tiny_runs["head"])
    flagged = client.post("/predict", files=upload).json()["predictions"][0]
    assert flagged["out_of_distribution"] is True
    assert flagged["note"] == f"OUT OF DISTRIBUTION (unlike the training images; model's guess: {flagged['prediction']})"
    assert client.get("/model").json()["out_of_distribution"]["k"] == ensemble.ood.k
    plain = dataclasses.replace(ensemble, ood=None)   # a run without a reference still answers, without scores
    answer = client_for(plain, tiny_runs["head"]).post("/predict", files=upload).json()["predictions"][0]
    assert answer["out_of_distribution"] is None and answer["ood_score"] is None


def test_serve_on_a_busy_port_says_so_in_one_line_before_claiming_to_serve(tiny_runs, capsys):  # noqa: F811
    run = tiny_runs["head"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = train_cli.main(["serve", run.name, "--port", str(port), "--runs-dir", str(run.parent)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "serving" not in err and len(err.splitlines()) == 1
    assert f"127.0.0.1:{port}" in err and "--port" in err


def test_a_second_server_on_the_same_address_is_refused():
    listener = serve.listening_socket("127.0.0.1", 0)
    listener.listen()
    with listener, pytest.raises(UserError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
        serve.listening_socket("127.0.0.1", listener.getsockname()[1])
