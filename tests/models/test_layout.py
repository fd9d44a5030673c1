"""models.layout: on the CPU a placed model computes channels-last, agrees with the contiguous
layout to float32 rounding, and a trained model computes exactly as its loaded checkpoint does."""
import torch

from cxr_xai_bench.models import TrainConfig, build_model, load_checkpoint, place_model, save_checkpoint, train_classifier


def _first_conv(model):
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_placed_model_is_channels_last_and_agrees_with_contiguous():
    torch.manual_seed(0)
    model = build_model("resnet50").eval()
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
        place_model(model, "cpu")
        after = model(x)
    assert _first_conv(model).weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(before, after, atol=1e-5)


def test_trained_and_loaded_models_compute_alike(tmp_path):
    torch.manual_seed(0)
    images, labels = torch.rand(8, 1, 32, 32), torch.tensor([0, 1] * 4)
    trained = build_model("resnet50")
    train_classifier(trained, images, labels, images, labels, TrainConfig(epochs=1, batch_size=4, precision="fp32"))
    save_checkpoint(trained, tmp_path / "m.pt", {})
    loaded = build_model("resnet50")
    load_checkpoint(loaded, tmp_path / "m.pt")
    place_model(loaded, "cpu").eval()
    assert _first_conv(trained).weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(trained(images), loaded(images))
