"""What the model returns: raw class scores by default, or centred ones on request, with the same
weights, the same softmax and interchangeable checkpoints."""
import inspect

import pytest
import torch
from captum.attr import LayerGradCam

from cxr_xai_bench.models import MODELS, build_model, load_checkpoint, save_checkpoint

BUILDERS = [("vgg16", {"head": "compact"}), ("vgg16_bn", {"head": "compact"}), ("resnet50", {})]


def _pair(name, params):
    """The same weights built with output raw and centred, in eval mode, with a shared component
    added to both class scores (so raw and centred visibly differ)."""
    torch.manual_seed(0)
    raw = build_model(name, output="raw", **params).eval()
    head = raw.net.get_submodule(raw.head_layer_name)
    with torch.no_grad():
        head.bias += 3.0
    centred = build_model(name, output="centred", **params).eval()
    centred.load_state_dict(raw.state_dict())
    return raw, centred


@pytest.mark.parametrize("name,params", BUILDERS)
def test_every_builder_takes_output_raw_by_default_and_declares_it(name, params):
    assert inspect.signature(MODELS[name]).parameters["output"].default == "raw"
    assert build_model(name, output="centred", **params).output_kind == "centred"
    with pytest.raises(ValueError, match="unknown model output 'logits'"):
        build_model(name, output="logits", **params)


@pytest.mark.parametrize("name,params", [BUILDERS[0], BUILDERS[2]])
def test_centred_is_raw_minus_the_class_mean_and_softmax_is_the_same(name, params):
    raw, centred = _pair(name, params)
    assert raw.output_kind == "raw"
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, z = raw(x), centred(x)
    assert torch.allclose(z, y - y.mean(1, keepdim=True), atol=1e-5)
    assert torch.allclose(z.sum(1), torch.zeros(3), atol=1e-5)
    assert not torch.allclose(y, z, atol=0.5), "raw scores keep the component both classes share"
    assert torch.allclose(y.softmax(1), z.softmax(1), atol=1e-6)
    for model in (raw, centred):  # the LRP view of the model returns what forward returns
        with model.centred_head() as net, torch.no_grad():
            assert torch.allclose(net(model.preprocess(x)), model(x), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(raw(x), y), "centred_head restores the head"
        assert torch.allclose(centred(x), z, atol=1e-6)


def _input_gradient(model, x, target):
    x = x.clone().requires_grad_(True)
    model(x)[:, target].sum().backward()
    return x.grad


def test_gradients_and_gradcam_of_the_two_classes_under_each_output():
    raw, centred = _pair("vgg16", {"head": "compact"})
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    # centred: z0 = -z1, so every gradient-based map of class 0 is minus that of class 1
    g0, g1 = _input_gradient(centred, x, 0), _input_gradient(centred, x, 1)
    assert torch.allclose(g0, -g1, atol=1e-6) and g0.abs().max() > 0
    cams = {}
    for kind, model in (("raw", raw), ("centred", centred)):
        gc = LayerGradCam(model, model.gradcam_layer)
        cams[kind] = [gc.attribute(x, target=t, relu_attributions=False).detach() for t in (0, 1)]
    c0, c1 = cams["centred"]
    assert torch.allclose(c0, -c1, atol=1e-6), "centred Grad-CAM of class 0 is ReLU(-CAM of class 1)"
    assert torch.allclose(torch.relu(c0), torch.relu(-c1), atol=1e-6)
    # raw: each class score is explained on its own; the maps are not mirror images
    r0, r1 = cams["raw"]
    assert not torch.allclose(r0, -r1, atol=1e-3 * float(r0.abs().max()))
    assert not torch.allclose(_input_gradient(raw, x, 0), -_input_gradient(raw, x, 1), atol=1e-6)
    # and the centred map is half the raw difference of the classes
    assert torch.allclose(c0, (r0 - r1) / 2, atol=1e-5)


@pytest.mark.parametrize("saved,loaded", [("raw", "centred"), ("centred", "raw")])
def test_checkpoint_of_one_output_loads_into_the_other(tmp_path, saved, loaded):
    torch.manual_seed(0)
    a = build_model("resnet50", output=saved).eval()
    save_checkpoint(a, tmp_path / "m.pt", {"output": saved})
    b = build_model("resnet50", output=loaded).eval()
    assert set(a.state_dict()) == set(b.state_dict())
    assert load_checkpoint(b, tmp_path / "m.pt") == {"output": saved}
    assert b.output_kind == loaded
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(a(x).softmax(1), b(x).softmax(1), atol=1e-6)
