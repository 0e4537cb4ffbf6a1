"""Device-resident input on the CPU: the same pixels as the PIL path for evaluation, per-sample augmentation for
training, and a finetune run through it whose stored results are what its fold models compute on the PIL path."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import train_cli
from core.config import Augmentation, RunConfig
from core.data.dataset import load_rgb
from core.errors import UserError
from core.run import lifecycle as run_lifecycle
from core.training import fold_job, gpu_input, run_inputs
from core.training.features import eval_transform, train_transform
from core.training.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

SIZE = 56  # cache side 64: an even margin, so the centre crop is the same pixels either way
PREP = Preprocessing.standard(SIZE)


@pytest.fixture
def photos(tmp_path):
    """Non-square JPEGs with structure (a gradient plus noise), so crops and flips change pixels."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(90, 70), (70, 90), (80, 80), (120, 64)]):
        ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        pixels = np.clip(ramp + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        paths.append(tmp_path / f"photo{i}.jpg")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)


def test_cache_is_uint8_squares_and_eval_crops_match_the_pil_transform(photos):
    images = gpu_input.decode_images(photos, PREP, torch.device("cpu"))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 64, 64)
    ours = gpu_input.eval_batch(images, PREP)
    reference = torch.stack([eval_transform(PREP)(load_rgb(p)) for p in photos])
    assert ours.shape == reference.shape == (4, 3, SIZE, SIZE)
    assert (ours - reference).abs().max() < 1e-4


def test_train_batches_are_normalised_and_vary_per_sample(photos):
    images = gpu_input.decode_images(photos[:1], PREP, torch.device("cpu")).expand(64, -1, -1, -1)
    x = gpu_input.train_batch(images, PREP, torch.Generator().manual_seed(0))
    assert x.shape == (64, 3, SIZE, SIZE) and x.dtype == torch.float32 and torch.isfinite(x).all()
    pixels = unnormalise(x)
    assert pixels.min() > -1e-4 and pixels.max() < 1 + 1e-4  # valid [0, 1] images before normalisation
    assert abs(x.mean()) < 1.5 and 0.3 < x.std() < 2
    # The same image 64 times: every augmented copy differs, and the left-to-right ramp is reversed in some.
    flat = x.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(64) * 1e9).min() > 1
    slope = pixels.mean((1, 2))[:, -8:].mean(1) - pixels.mean((1, 2))[:, :8].mean(1)
    assert (slope > 0.1).sum() > 10 and (slope < -0.1).sum() > 10


def test_plain_path_jitters_colours_in_float_so_no_intensity_is_truncated(tmp_path):
    """uint8 colour jitter would floor every value (each op darkens by half a level on average); in float, a grey
    image scaled by a random brightness keeps the fraction."""
    Image.new("RGB", (64, 64), (100, 100, 100)).save(tmp_path / "grey.png")
    torch.manual_seed(0)
    centres = torch.stack([unnormalise(train_transform(PREP)(load_rgb(tmp_path / "grey.png"))[None])[0, :, 28, 28]
                           for _ in range(20)]) * 255
    assert ((centres - centres.round()).abs() > 0.01).float().mean() > 0.8
    assert 80 - 1e-3 <= centres.min() and centres.max() <= 120 + 1e-3  # brightness 0.8-1.2 of 100


def test_crop_boxes_are_drawn_like_random_resized_crop():
    """Inside the image, half to all of its area, aspect 3:4 to 4:3: draws that would not fit are drawn again
    (as torchvision does), not clipped, so the shares match the PIL path's."""
    boxes = gpu_input._crop_boxes(4000, 64, Augmentation(), torch.Generator().manual_seed(0))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes >= 0).all() and (boxes <= 64 + 1e-4).all()
    share, aspect = w * h / 64 ** 2, w / h
    assert share.min() >= 0.5 - 1e-4 and share.max() <= 1 + 1e-4 and len(set(w.tolist())) > 2000
    assert aspect.min() >= 3 / 4 - 1e-4 and aspect.max() <= 4 / 3 + 1e-4
    reference = torch.tensor([v2.RandomResizedCrop.get_params(torch.zeros(1, 64, 64), [0.5, 1.0], [3 / 4, 4 / 3])[2:]
                              for _ in range(4000)], dtype=torch.float32)
    assert abs(share.mean() - (reference[:, 0] * reference[:, 1] / 64 ** 2).mean()) < 0.01


def test_resident_batches_follow_index_sampler_and_drop_last(photos):
    images = gpu_input.decode_images(photos, PREP, torch.device("cpu"))
    labels = np.array([0, 1, 2, 0])
    ordered = gpu_input.ResidentBatches(images, labels, np.array([3, 1, 2]), PREP, 2)
    assert len(ordered) == 2 and [t.tolist() for _, t in ordered] == [[0, 1], [2]]
    training = gpu_input.ResidentBatches(images, labels, np.array([3, 1, 2]), PREP, 2, train=True,
                                         generator=torch.Generator().manual_seed(0), drop_last=True)
    assert len(training) == 1 and sum(len(t) for _, t in training) == 2
    sampled = gpu_input.ResidentBatches(images, labels, np.array([0, 1]), PREP, 4, train=True, sampler=[1, 1, 1, 0],
                                        generator=torch.Generator().manual_seed(0))
    assert [t.tolist() for _, t in sampled] == [[1, 1, 1, 0]]


def test_auto_choice_keeps_the_dataloader_off_cuda():
    assert not gpu_input.fits_on_device(10, Preprocessing.standard(224), torch.device("cpu"))
    assert gpu_input.cache_bytes(10, Preprocessing.standard(224)) == 10 * 3 * 256 * 256


def test_a_finetune_run_through_resident_images_stores_what_its_fold_models_see_on_the_plain_path(tmp_path,
                                                                                               csv_dataset, capsys):
    """The resident path is another way to feed the same folds: each fold model's stored predictions (every role)
    and embedding are what that saved model computes from the same images read the plain way (PIL, the evaluation
    transform). A sample fed another image, another fold's part, or other pixels would change them."""
    code = train_cli.main(["--data", str(csv_dataset), "--runs-dir", str(tmp_path / "runs"), "--weights", "none",
                           "--image-size", str(SIZE), "--folds", "2", "--epochs", "1", "--batch-size", "8",
                           "--train-mode", "finetune", "--image-input", "resident"])
    assert code == 0 and "fold 1: images decoded once into device memory" in capsys.readouterr().out
    run_dir = next((tmp_path / "runs").iterdir())
    info, _, samples = run_inputs.load_run_inputs(run_dir)
    plain = torch.stack([eval_transform(PREP)(load_rgb(path)) for path in run_inputs.image_paths(info, samples)])
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    columns = [f"prob_{name}" for name in info["classes"]]
    for fold in (0, 1):
        model = fold_job.load_fold_model(run_dir, fold).eval()
        with torch.inference_mode():
            embedding = model.backbone(plain)
            probs = torch.softmax(model.head(embedding), 1).numpy()
        stored = predictions[predictions.model == f"fold{fold}"]
        parts = run_inputs.fold_parts(samples, fold)
        assert {role: sorted(rows.sample_id) for role, rows in stored.groupby("role")} == {
            role: sorted(index) for role, index in parts.items()}
        assert np.abs(stored[columns].to_numpy() - probs[stored.sample_id]).max() < 1e-4
        assert np.allclose(np.load(run_dir / "embeddings" / f"fold{fold}.npy"), embedding.numpy(), rtol=1e-2,
                           atol=1e-2)


def test_an_unknown_image_input_is_refused_before_any_work(tmp_path):
    with pytest.raises(UserError, match="--image-input gpu: choose one of auto, resident, loader"):
        run_lifecycle.start_run(RunConfig(image_input="gpu", runs_dir=str(tmp_path)))
    assert not any(tmp_path.iterdir())
