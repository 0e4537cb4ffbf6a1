"""Input recipes: the standard one unchanged, each model's own from its torchvision weights, fixed input sizes
refused early, and new heads on any torchvision classifier."""
import numpy as np
import pytest
import torch
from PIL import Image

from core.config import RunConfig
from core.errors import UserError
from core.training.features import eval_transform, feature_cache_key
from core.training.models import classifier_from_network, shape_network
from core.training.preprocessing import (
    IMAGENET_MEAN,
    Preprocessing,
    fixed_input_size,
    model_preprocessing,
    own_input_size,
    recorded_preprocessing,
    run_preprocessing,
)


def test_the_standard_recipe_and_its_cache_key_are_what_they_were_before_recipes():
    prep = run_preprocessing(RunConfig(image_size=224))
    assert prep == Preprocessing(224, 256, IMAGENET_MEAN, (0.229, 0.224, 0.225), "bilinear")
    assert prep.cache_tag() == "eval:resize256crop224"   # features cached before recipes stay valid
    assert recorded_preprocessing({"config": {"image_size": 64}}) == Preprocessing.standard(64)


def test_a_models_own_recipe_comes_from_its_weights():
    effnet = run_preprocessing(RunConfig(model="efficientnet_v2_s", preprocessing="model", image_size=384))
    assert (effnet.size, effnet.resize) == (384, 384)       # EfficientNet-V2 resizes without a crop margin
    assert model_preprocessing("convnext_tiny", 112).resize == 118   # 236/224 of the crop, at any crop size
    assert model_preprocessing("efficientnet_b0", 224).interpolation == "bicubic"
    assert own_input_size("efficientnet_v2_s") == 384 and own_input_size("vit_b_16") == 224
    standard, own = Preprocessing.standard(224), model_preprocessing("efficientnet_b0", 224)
    assert feature_cache_key({"name": "x"}, "sha", standard) != feature_cache_key({"name": "x"}, "sha", own)
    assert Preprocessing.from_dict(own.to_dict()) == own


def test_a_network_built_for_one_input_size_refuses_others_before_a_run_starts():
    assert fixed_input_size("vit_b_16") == 224 and fixed_input_size("resnet18") is None
    with pytest.raises(UserError, match="--image-size 64: vit_b_16 takes only 224-pixel inputs"):
        run_preprocessing(RunConfig(model="vit_b_16", image_size=64))
    assert run_preprocessing(RunConfig(model="vit_b_16")).size == 224
    assert fixed_input_size("regnet_y_400mf") is None   # a builder that computes while building: built on the CPU


def test_the_eval_transform_follows_the_recipe(tmp_path):
    image = Image.fromarray(np.full((50, 80, 3), 255, dtype=np.uint8))
    prep = Preprocessing(32, 40, (1.0, 0.5, 0.0), (0.5, 0.5, 0.5), "bicubic")
    tensor = eval_transform(prep)(image)
    assert tensor.shape == (3, 32, 32)
    np.testing.assert_allclose(tensor[:, 0, 0].numpy(), [0.0, 1.0, 2.0], atol=1e-5)   # (1 - mean) / std


@pytest.mark.parametrize("name, feature_dim", [("vit_b_16", 768), ("convnext_tiny", 768),
                                               ("efficientnet_v2_s", 1280), ("mobilenet_v3_small", 1024)])
def test_any_torchvision_classifier_gets_a_new_head_in_place_of_its_last_layer(name, feature_dim):
    classifier, arch = classifier_from_network(shape_network(name), name, 3, False)
    assert arch.feature_dim == feature_dim and classifier.head.out_features == 3
    assert not any(isinstance(m, torch.nn.Linear) and m.out_features == 1000 for m in classifier.backbone.modules())
