"""An HTTP API over a run's fold models (FastAPI): POST /predict, GET /model, GET /health, OpenAPI docs.

The models are loaded once (core/delivery/predict.py). One inference thread runs one forward pass at a time (concurrent
forwards would only compete for the same cores and multiply peak memory); the images of every request that
arrived while it was busy go into its next batch together, so concurrent requests share a forward pass and
a lone request waits for nothing. Bad input gets a 4xx with a one-line `detail`; the server keeps serving.
Every answer carries each image's out-of-distribution score and flag (core/analysis/ood.py), from the features the
same forward pass computes, and an image out of distribution says so in `note`.
"""
from __future__ import annotations

import asyncio
import hmac
import queue
import socket
import threading
from concurrent.futures import Future
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from core.analysis.confidence import Confidence
from core.delivery.predict import OOD_NOTE, Ensemble, decode, ood_scores, preprocess
from core.delivery.serve_settings import ServeSettings
from core.errors import UserError

MULTIPART_OVERHEAD = 64 * 1024   # form boundaries and part headers on top of the files themselves
DECODERS = 2                     # images decoded at full size at once: bounds memory under hostile uploads


class ClassProbability(BaseModel):
    label: str
    probability: float


class ImagePrediction(BaseModel):
    filename: str
    prediction: str
    confidence: float
    probabilities: dict[str, float]
    top: list[ClassProbability]
    prediction_set: list[str] | None = Field(None, description="the classes the image could be, most probable "
                                             "first: the true class is in it for `coverage` of images")
    calibrated_confidence: float | None = Field(None, description="the prediction's probability after "
                                                "temperature scaling fitted on the run's out-of-fold predictions")
    ood_score: float | None = None              # distance to the k-th nearest training image (models' features)
    ood_threshold: float | None = None          # the 95th percentile of held-out images' scores
    out_of_distribution: bool | None = None     # ood_score above ood_threshold; None: the run has no reference
    note: str | None = None                     # said when the image is out of distribution


class PredictResponse(BaseModel):
    run_id: str
    predictions: list[ImagePrediction]
    coverage: float | None = None
    class_conditional: bool | None = None


def batch_sizes(n: int, largest: int) -> list[int]:
    """`n` images as forward passes of power-of-two sizes up to `largest` (13 -> 8, 4, 1): no padding, and only a
    handful of distinct input shapes, each of which the CPU backend caches kernels and buffers for."""
    largest = 1 << (max(1, largest).bit_length() - 1)
    sizes = [largest] * (n // largest)
    rest = n % largest
    return sizes + [1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1]


class Outputs(NamedTuple):
    probs: np.ndarray                 # [n, n_classes]
    ood_scores: np.ndarray | None     # [n], None when the ensemble has no OOD reference


class Batcher:
    """Classifies the images of concurrent requests together: a request queues its preprocessed images and gets
    a future; the inference thread takes everything queued (up to `max_images`) into the next forward passes."""

    def __init__(self, ensemble: Ensemble, max_images: int, tta: bool):
        self.ensemble, self.max_images, self.tta = ensemble, max_images, tta
        self.pending: queue.Queue[tuple[list[torch.Tensor], Future]] = queue.Queue()
        self.worker: threading.Thread | None = None
        self.start_lock = threading.Lock()

    def submit(self, images: list[torch.Tensor]) -> Future:
        with self.start_lock:  # started on first use, so an app that never predicts holds no thread
            if self.worker is None:
                self.worker = threading.Thread(target=self._run, name="foldlens-inference", daemon=True)
                self.worker.start()
        future: Future = Future()
        self.pending.put((images, future))
        return future

    def _run(self) -> None:
        while True:
            batch = [self.pending.get()]
            size = len(batch[0][0])
            while size < self.max_images:
                try:
                    item = self.pending.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                size += len(item[0])
            try:
                outputs = self.forward([image for images, _ in batch for image in images])
            except Exception as exc:  # reported to the requests of this batch; the thread keeps serving
                for _, future in batch:
                    future.set_exception(exc)
                continue
            start = 0
            for images, future in batch:
                part = slice(start, start + len(images))
                future.set_result(Outputs(outputs.probs[part],
                                          None if outputs.ood_scores is None else outputs.ood_scores[part]))
                start += len(images)

    def forward(self, inputs: list[torch.Tensor]) -> Outputs:
        chunks, start = [], 0
        embeddings = [] if self.ensemble.ood is not None else None
        for size in batch_sizes(len(inputs), max(self.max_images, len(inputs))):  # a request's images: one batch
            chunks.append(self.ensemble.probabilities(torch.stack(inputs[start:start + size]), self.tta, embeddings))
            start += size
        return Outputs(np.concatenate(chunks), ood_scores(self.ensemble, embeddings or []))


def model_card(ensemble: Ensemble, metrics: dict | None, settings: ServeSettings) -> dict:
    """What GET /model answers: classes, architecture, weights source and the run's validation numbers."""
    info = ensemble.info
    metrics = metrics or {}
    return {
        "run_id": ensemble.run_id, "classes": ensemble.classes, "architecture": info["model"],
        "train_mode": info["train_mode"], "image_size": ensemble.prep.size, "folds": ensemble.folds,
        "weights": {"spec": info["weights"]["spec"], "source": info["weights"]["source"],
                    "sha256": info["weights"]["sha256"]},
        "ensemble": "mean softmax probability of the fold models, as the run's test ensemble",
        "validation": {"out_of_fold": {key: value for key, value in metrics.get("oof", {}).get("val", {}).items()
                                       if key in ("n", "accuracy", "balanced_accuracy", "macro_f1")},
                       "fold_summary": metrics.get("summary", {}).get("val")},
        "test_ensemble": {key: value for key, value in metrics.get("ensemble", {}).get("test", {}).items()
                          if key in ("n", "accuracy", "balanced_accuracy", "macro_f1")} or None,
        "limits": settings.limits(), "device": str(ensemble.device),
        "out_of_distribution": ensemble.ood.describe() if ensemble.ood is not None else None,
    }


def _bearer_check(token: str | None):
    """A dependency that requires `Authorization: Bearer <token>` when a token is set (constant-time compare)."""
    scheme = HTTPBearer(auto_error=False, description="Set when the server was started with a token.")

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
    return check


def create_app(ensemble: Ensemble, metrics: dict | None = None, settings: ServeSettings | None = None,
               confidence: Confidence | None = None) -> FastAPI:
    """The API for one loaded ensemble. `metrics` is the run's metrics.json (shown by GET /model); with
    `confidence`, each prediction also has its conformal prediction set and calibrated confidence."""
    settings = settings or ServeSettings()
    if settings.max_batch is None:
        # On a shared 2-core CPU, sharing forward passes between requests did not raise throughput (bench_serve.py).
        settings = replace(settings, max_batch=32 if ensemble.device.type == "cuda" else 1)
    card = model_card(ensemble, metrics, settings)
    card["prediction_sets"] = confidence.describe() if confidence else None
    batcher = Batcher(ensemble, settings.max_batch, settings.tta)
    decoders = threading.Semaphore(DECODERS)

    def model_input(data: bytes) -> torch.Tensor | str:
        """Decoded and preprocessed at once, so only the small model input of an image is kept."""
        with decoders:
            image = decode(data, settings.max_pixels)
            return image if isinstance(image, str) else preprocess(ensemble, image)
    authorised = [Depends(_bearer_check(settings.token))]
    # FastAPI's own /docs and /redoc pages load their scripts from a CDN, which a machine without internet (or a
    # browser behind a strict proxy) cannot reach; FastAPIOffline serves them from the installed package.
    app = FastAPIOffline(title=f"foldlens: run {ensemble.run_id}", version="1",
                         description=f"Classifies images into {', '.join(ensemble.classes)} with the fold models of "
                                     f"run {ensemble.run_id} (mean probability over {len(ensemble.folds)} folds).")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        """Refuse an oversized upload from its Content-Length, before anything is read or spooled to disk."""
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse({"detail": "send a Content-Length header (chunked uploads are not accepted)"},
                                    status_code=411)
            limit = settings.max_files * settings.max_file_bytes + MULTIPART_OVERHEAD
            if not length.isdigit() or int(length) > limit:
                return JSONResponse({"detail": f"request body of {length} bytes is over the limit of {limit} "
                                               f"bytes ({settings.max_files} files of at most "
                                               f"{settings.max_file_bytes} bytes)"}, status_code=413)
        return await call_next(request)

    @app.get("/health", summary="Liveness: the models are loaded")
    def health() -> dict:
        return {"status": "ok", "run_id": ensemble.run_id}

    @app.get("/model", summary="Classes, architecture, weights and the run's validation metrics",
             dependencies=authorised)
    def model() -> dict:
        return card

    @app.post("/predict", response_model=PredictResponse, dependencies=authorised,
              summary="Classify one or more uploaded images (multipart field `files`)")
    async def predict(files: list[UploadFile] | None = File(None, description="image files")) -> PredictResponse:
        if not files:
            raise HTTPException(400, "no images: send one or more files as multipart/form-data field 'files'")
        if len(files) > settings.max_files:
            raise HTTPException(413, f"{len(files)} files: at most {settings.max_files} per request")
        names = [file.filename or f"file{i}" for i, file in enumerate(files)]
        contents = []
        for name, file in zip(names, files):
            data = await file.read(settings.max_file_bytes + 1)
            if len(data) > settings.max_file_bytes:
                raise HTTPException(413, f"{name}: larger than the limit of {settings.max_file_bytes} bytes")
            contents.append(data)
        decoded = await run_in_threadpool(lambda: [model_input(data) for data in contents])
        problems = [f"{name}: {image}" for name, image in zip(names, decoded) if isinstance(image, str)]
        if problems:
            raise HTTPException(400, "not a usable image: " + "; ".join(problems))
        outputs = await asyncio.wrap_future(batcher.submit(decoded))
        probs = outputs.probs
        predictions = [_with_ood(_prediction(name, row, ensemble.classes), outputs.ood_scores, i, ensemble)
                       for i, (name, row) in enumerate(zip(names, probs))]
        if confidence is None:
            return PredictResponse(run_id=ensemble.run_id, predictions=predictions)
        members = confidence.labels(confidence.sets(probs), probs)
        for item, labels, calibrated in zip(predictions, members, confidence.calibrated(probs).max(axis=1)):
            item.prediction_set, item.calibrated_confidence = labels, float(calibrated)
        return PredictResponse(run_id=ensemble.run_id, predictions=predictions, coverage=confidence.coverage,
                               class_conditional=confidence.class_conditional)

    return app


def _prediction(name: str, probs: np.ndarray, classes: list[str]) -> ImagePrediction:
    order = np.argsort(-probs)
    return ImagePrediction(filename=name, prediction=classes[order[0]], confidence=float(probs[order[0]]),
                           probabilities={c: float(p) for c, p in zip(classes, probs)},
                           top=[ClassProbability(label=classes[i], probability=float(probs[i])) for i in order[:3]])


def _with_ood(prediction: ImagePrediction, scores: np.ndarray | None, i: int, ensemble: Ensemble) -> ImagePrediction:
    if scores is None or ensemble.ood is None:
        return prediction
    flagged = bool(scores[i] > ensemble.ood.threshold)
    return prediction.model_copy(update={
        "ood_score": float(scores[i]), "ood_threshold": ensemble.ood.threshold, "out_of_distribution": flagged,
        "note": OOD_NOTE.format(prediction.prediction) if flagged else None})


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything says it is serving (uvicorn serves on it): a busy port or an
    address this machine does not have is one line naming host:port, not uvicorn's error after "serving"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn does: restart past TIME_WAIT
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick a free --port (or stop "
                        "whatever is using this one), or a --host this machine has") from None
    return listener
