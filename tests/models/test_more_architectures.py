"""densenet121 (torchvision), the generic torchvision builder and torchxrayvision's DenseNet121 behind
the grey-input wrapper: shapes, declared layers, outputs, state_dict compatibility, input scaling."""
import pytest
import torch
import torchvision

from cxr_xai_bench.models import build_model, load_trained


@pytest.mark.parametrize("name,params", [("densenet121", {}), ("densenet121", {"output": "centred"}),
                                         ("torchvision", {"arch": "resnet18"})])
def test_grey_images_to_two_logits(name, params):
    m = build_model(name, **params).eval()
    out = m(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 2) and m.gradcam_layer is not None
    assert m.net.get_submodule(m.head_layer_name).out_features == 2
    if params.get("output") == "centred":
        assert torch.allclose(out.sum(1), torch.zeros(2), atol=1e-5)
    with pytest.raises(ValueError, match="expects images shaped"):
        m(torch.rand(2, 3, 32, 32))


def test_densenet121_declares_the_final_relu_and_loads_torchvision_state_dicts(tmp_path):
    m = build_model("densenet121").eval()
    assert m.gradcam_layer_name == "relu" and isinstance(m.gradcam_layer, torch.nn.ReLU)
    assert m.head_layer_name == "classifier"
    # the rebuilt network equals torchvision's DenseNet121 on the same weights
    tv = torchvision.models.densenet121(weights=None, num_classes=2).eval()
    torch.save(tv.state_dict(), tmp_path / "tv.pt")
    info = load_trained(m, tmp_path / "tv.pt")
    assert info["format"] == "state_dict" and len(info["sha256"]) == 64
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), tv(m.preprocess(x)), atol=1e-5)
    # no in-place activation is left to disturb hooks
    assert not any(getattr(mod, "inplace", False) for mod in m.modules())


def test_generic_torchvision_builder_infers_layers_and_rejects_unknown_names():
    m = build_model("torchvision", arch="efficientnet_b0")
    assert (m.gradcam_layer_name, m.head_layer_name, m.arch) == ("features", "classifier.1", "efficientnet_b0")
    assert build_model("torchvision", arch="resnet18").gradcam_layer_name == "layer4"
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        build_model("torchvision", arch="resnet5O")


def test_pickled_model_needs_the_opt_in(tmp_path):
    m = build_model("densenet121")
    torch.save(m, tmp_path / "whole.pt")
    with pytest.raises(ValueError, match="allow_pickle"):
        load_trained(build_model("densenet121"), tmp_path / "whole.pt")
    other = build_model("densenet121")
    assert load_trained(other, tmp_path / "whole.pt", allow_pickle=True)["format"] == "pickled_model"
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in m.state_dict().items())


class TestXrv:
    @pytest.fixture(autouse=True)
    def _xrv(self):
        import torchxrayvision  # the test extra installs it: a missing one fails, never skips
        return torchxrayvision

    def test_scaling_resize_and_two_logits_from_one_pathology(self, _xrv):
        torch.manual_seed(0)
        m = build_model("xrv_densenet121", weights="", pathology="Lung Opacity").eval()
        x = torch.rand(2, 1, 64, 64)
        z = m.preprocess(x)
        assert z.shape == (2, 1, 224, 224)
        assert torch.allclose(m.preprocess(torch.ones(1, 1, 224, 224)), torch.full((1, 1, 224, 224), 1024.0))
        assert torch.allclose(m.preprocess(torch.zeros(1, 1, 224, 224)), torch.full((1, 1, 224, 224), -1024.0))
        # the same input through torchxrayvision's own DenseNet: our softmax is its sigmoid of the pathology
        ref = _xrv.models.DenseNet(weights=None).eval()
        ref.features.load_state_dict(m.net.features.state_dict())
        row = list(ref.targets).index("Lung Opacity")
        with torch.no_grad():
            ref.classifier.weight[row] = m.net.classifier.weight[1] * 2
            ref.classifier.bias[row] = m.net.classifier.bias[1] * 2
            logits = m(x)
            expected = ref(z)[:, row]  # xrv itself on the scaled, resized input (its own ReLU and pooling)
        assert torch.allclose(logits[:, 1], expected / 2, rtol=1e-4, atol=1e-3)
        assert torch.allclose(logits[:, 0], -logits[:, 1])
        assert torch.allclose(logits.softmax(1)[:, 1], torch.sigmoid(expected), atol=1e-4)

    def test_weights_file_and_errors(self, _xrv, tmp_path):
        torch.manual_seed(1)
        ref = _xrv.models.DenseNet(weights=None)
        torch.save(ref.state_dict(), tmp_path / "xrv.pt")
        m = build_model("xrv_densenet121", weights="", weights_file=str(tmp_path / "xrv.pt"))
        assert torch.equal(m.net.features.conv0.weight, ref.features.conv0.weight)
        with pytest.raises(ValueError, match="pathology 'Cat' is not an output"):
            build_model("xrv_densenet121", weights="", pathology="Cat")
        with pytest.raises(ValueError, match="unknown torchxrayvision weights"):
            build_model("xrv_densenet121", weights="densenet121-res999")
        # rsna weights name only the labels they were trained for
        with pytest.raises(ValueError, match="outputs: \\['Pneumonia', 'Lung Opacity'\\]"):
            build_model("xrv_densenet121", weights="densenet121-res224-rsna", weights_file=str(tmp_path / "xrv.pt"),
                        pathology="Effusion")
