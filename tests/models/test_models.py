import logging

import pytest
import torch

from cxr_xai_bench.models import TrainConfig, build_model, load_checkpoint, save_checkpoint, train_classifier
from cxr_xai_bench.models.training import classifier_report


@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn", "resnet50"])
def test_takes_grey_images_and_returns_two_logits(name):
    m = build_model(name, head="compact").eval()
    out = m(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 2)
    assert m.gradcam_layer is not None
    with pytest.raises(ValueError, match="expects images shaped"):
        m(torch.rand(2, 3, 32, 32))


def test_normalisation_is_inside_the_model():
    m = build_model("resnet50")
    x = torch.rand(1, 1, 8, 8)
    z = m.preprocess(x)
    assert z.shape == (1, 3, 8, 8)
    expected = (x[0, 0] - 0.485) / 0.229
    assert torch.allclose(z[0, 0], expected)


def test_full_torchvision_vgg_head_is_the_default():
    m = build_model("vgg16")
    assert m.net.classifier[0].in_features == 512 * 7 * 7


def test_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 32, 32)
    y = torch.arange(16) % 2
    x[y == 1, :, 8:16, 8:16] += 0.5  # a learnable signal
    m = build_model("resnet50")
    loss_before = torch.nn.functional.cross_entropy(m.eval()(x), y).item()
    res = train_classifier(m, x, y, x, y, TrainConfig(epochs=3, batch_size=8, lr=1e-3, augment=False))
    loss_after = torch.nn.functional.cross_entropy(m.eval()(x), y).item()
    assert loss_after < loss_before
    assert len(res.history) == 3 and {"accuracy", "f1", "auroc"} <= set(res.val)


def test_checkpoint_roundtrip_and_wrong_architecture(tmp_path):
    m = build_model("vgg16", head="compact")
    save_checkpoint(m, tmp_path / "a.pt", {"note": "x"})
    m2 = build_model("vgg16", head="compact")
    assert load_checkpoint(m2, tmp_path / "a.pt") == {"note": "x"}
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    with pytest.raises(ValueError, match="does not fit model resnet50"):
        load_checkpoint(build_model("resnet50"), tmp_path / "a.pt")


def test_pretrained_missing_falls_back_to_scratch(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with caplog.at_level(logging.WARNING):
        m = build_model("resnet50", pretrained="imagenet")
    assert "training from scratch" in caplog.text
    assert m.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 2)
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        build_model("resnet50", pretrained=str(tmp_path / "nothere.pt"))


def test_pretrained_from_local_file_drops_the_imagenet_head(tmp_path):
    import torchvision
    ref = torchvision.models.resnet50(num_classes=1000)
    torch.save(ref.state_dict(), tmp_path / "imagenet.pth")
    m = build_model("resnet50", pretrained=str(tmp_path / "imagenet.pth"))
    assert torch.equal(m.net.conv1.weight, ref.conv1.weight)
    assert m.net.fc.out_features == 2


def test_classifier_report_counts():
    import numpy as np
    rep = classifier_report(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.4]))
    assert rep["accuracy"] == 0.5 and rep["tp"] == 1 and rep["fp"] == 1
    assert rep["sensitivity"] == 0.5 and rep["specificity"] == 0.5 and rep["auroc"] == 0.75
