"""Any output layout (issue 28, item 4): `output_index` / `output_class` and `output_kind` turn one
output of a multi-label (sigmoid), multi-class (softmax) or one-logit head into the suite's two
logits, whose class-1 logit is that output's logit and whose softmax is that output's probability;
explainers see the chosen logit; bad values are one-line errors before any forward pass."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.run.config import ConfigError, load_config
from benchmark.run.param_check import check_params
from cxr_xai_bench.explainers import build_explainer
from cxr_xai_bench.models import MODELS, build_model, load_checkpoint, load_trained, predict_proba, save_checkpoint
from cxr_xai_bench.models.output_head import OutputHead

NAMES = ["Atelectasis", "Cardiomegaly", "Effusion", "Pneumonia", "Edema"]


class TinyHeads(nn.Module):
    """A plug-in's own network (no XrayClassifier): (N,1,16,16) -> (N, outputs), declaring its
    Grad-CAM layer (8x8 maps), its architecture, its head layer and its output names."""

    def __init__(self, outputs: int = 5):
        super().__init__()
        self.arch = "tiny_heads"
        self.head_layer_name = "head"
        self.output_names = NAMES[:outputs] if outputs > 1 else ["Pneumonia"]
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 8, 3, padding=1))
        self.act = nn.ReLU()
        self.head = nn.Linear(8, outputs)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.act

    def forward(self, x):
        return self.head(self.act(self.features(x)).mean((2, 3)))


@pytest.fixture
def tiny():
    """`tiny_heads` registered as a plug-in's model for the test only."""
    def tiny_heads(outputs: int = 5, output: str = "raw"):
        assert output == "raw", "centring applies to the two logits, never to the head's outputs"
        return TinyHeads(outputs)
    MODELS["tiny_heads"] = tiny_heads
    yield "tiny_heads"
    MODELS.pop("tiny_heads")


def _images(n=3, size=16, seed=1):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _build(name, **params):
    torch.manual_seed(0)
    return build_model(name, **params).eval()


def test_sigmoid_multilabel_output_gives_its_logit_and_its_sigmoid(tiny):
    m = _build(tiny, output_index=3, output_kind="sigmoid")
    x = _images()
    with torch.no_grad():
        z = m.base(x)
        logits = m(x)
    assert z.shape == (3, 5) and logits.shape == (3, 2)
    assert torch.equal(logits[:, 1], z[:, 3]), "the class-1 logit is the chosen output's logit"
    assert torch.equal(logits[:, 0], torch.zeros(3))
    assert torch.allclose(logits.softmax(1)[:, 1], torch.sigmoid(z[:, 3]), atol=1e-7)
    assert torch.allclose(predict_proba(m, x)[:, 1], torch.sigmoid(z[:, 3]), atol=1e-7)
    # centred: (-z/2, z/2), xrv_densenet121's layout, the same probability
    c = _build(tiny, output_class="Pneumonia", output_kind="sigmoid", output="centred")
    assert c.output_kind == "centred"
    with torch.no_grad():
        assert torch.allclose(c(x), torch.stack([-z[:, 3] / 2, z[:, 3] / 2], 1))


def _gradcam_by_hand(base: TinyHeads, x: torch.Tensor, output: int) -> torch.Tensor:
    """Grad-CAM of output `output` of the unwrapped network: gradients of that logit at the declared
    layer, weights their spatial mean, ReLU of the weighted sum, bilinear upsampling."""
    held = {}
    hook = base.gradcam_layer.register_forward_hook(lambda mod, inp, out: held.setdefault("a", out))
    try:
        z = base(x)
    finally:
        hook.remove()
    a = held["a"]
    grads = torch.autograd.grad(z[:, output].sum(), a)[0]
    cam = (grads.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True)
    assert (cam > 0).any() and (cam < 0).any(), "the weighted sum has both signs: the ReLU matters"
    return F.interpolate(F.relu(cam), size=x.shape[2:], mode="bilinear")[:, 0].detach()


def test_gradcam_of_class_1_is_gradcam_of_the_chosen_sigmoid_logit(tiny):
    m = _build(tiny, output_index=3, output_kind="sigmoid")
    x = _images()
    maps = build_explainer("gradcam").explain(m, x, torch.ones(3, dtype=torch.long))
    expected = _gradcam_by_hand(m.base, x, 3)
    assert expected.flatten(1).std(1).min() > 0, "non-constant maps"
    assert torch.allclose(maps, expected, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(maps, _gradcam_by_hand(m.base, x, 2), rtol=1e-3, atol=1e-6)


def test_softmax_multiclass_output_gives_its_logit_and_its_softmax_probability(tiny):
    x = _images()
    for params in ({"output_index": 2}, {"output_class": "Effusion", "output_kind": "softmax"}):
        m = _build(tiny, **params)
        with torch.no_grad():
            z, logits = m.base(x), m(x)
        assert torch.equal(logits[:, 1], z[:, 2]), params
        assert torch.allclose(logits.softmax(1)[:, 1], z.softmax(1)[:, 2], atol=1e-6), params
        assert torch.allclose(logits[:, 0], torch.logsumexp(z[:, [0, 1, 3, 4]], 1)), params
    # a two-class head whose pneumonia class is index 0: the two logits swap
    m = _build(tiny, outputs=2, output_index=0)
    with torch.no_grad():
        assert torch.equal(m(x), m.base(x).flip(1))


def test_one_logit_head_is_sigmoid_output_zero(tiny):
    x = _images()
    for params in ({"output_kind": "sigmoid"}, {"output_index": 0}, {"output_class": "Pneumonia"}):
        m = _build(tiny, outputs=1, **params)
        with torch.no_grad():
            z, logits = m.base(x)[:, 0], m(x)
        assert torch.equal(logits, torch.stack([torch.zeros_like(z), z], 1)), params
        assert torch.allclose(logits.softmax(1)[:, 1], torch.sigmoid(z), atol=1e-7), params


def test_wrapped_model_passes_through_what_explainers_read_and_keeps_its_state_dict(tiny, tmp_path):
    m = _build(tiny, output_index=3, output_kind="sigmoid")
    assert isinstance(m, OutputHead)
    assert m.gradcam_layer is m.base.act and m.arch == "tiny_heads" and m.head_layer_name == "head"
    assert list(m.state_dict()) == list(m.base.state_dict()), "checkpoint keys are the model's own"
    save_checkpoint(m, tmp_path / "ckpt.pt", {})
    other = _build(tiny, output_index=3, output_kind="sigmoid", outputs=5)
    with torch.no_grad():
        other.base.head.bias += 1
    load_checkpoint(other, tmp_path / "ckpt.pt")
    x = _images()
    with torch.no_grad():
        assert torch.equal(other(x), m(x))


def test_a_torchvision_state_dict_with_a_five_output_head_loads_and_is_explained(tmp_path):
    """A multi-label ResNet trained elsewhere (DataParallel keys, five outputs) through models.checkpoints."""
    torch.manual_seed(0)
    import torchvision
    net = torchvision.models.resnet18(num_classes=5)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "r18.pt")
    m = build_model("torchvision", arch="resnet18", num_classes=5, output_index=3, output_kind="sigmoid").eval()
    info = load_trained(m, tmp_path / "r18.pt")
    assert info["format"] == "state_dict"
    x = _images(2, 32)
    net.eval()
    with torch.no_grad():
        z = net(m.base.preprocess(x))
        assert torch.allclose(m(x)[:, 1], z[:, 3], atol=1e-5)


def test_lrp_starts_from_the_chosen_logit():
    """LRP (VGG16: z-box bounds passed through, canonizer by arch) of class 1 of a five-output head
    starts from z_3 alone, whether the head is sigmoid (output 3 folded into a two-row layer) or
    softmax (the head kept, the selection after it): the same relevance both ways, the explained
    logit z_3; class 0 of the softmax head (logsumexp of the others) conserves with bias-free rules."""
    torch.manual_seed(0)
    sig = build_model("vgg16", head="compact", num_classes=5, output_index=3, output_kind="sigmoid").eval()
    soft = build_model("vgg16", head="compact", num_classes=5, output_index=3).eval()
    with torch.no_grad():
        sig.base.net.classifier.weight.mul_(100)  # logits of order 1 and more, not ~1e-3
    soft.load_state_dict(sig.state_dict())
    x, ones = _images(2, 32), torch.ones(2, dtype=torch.long)
    rel_sig, logit_sig = build_explainer("lrp").relevance(sig, x, ones)
    rel_soft, logit_soft = build_explainer("lrp").relevance(soft, x, ones)
    with torch.no_grad():
        z = sig.base(x)
    assert torch.allclose(logit_sig, z[:, 3], atol=1e-5) and torch.allclose(logit_soft, z[:, 3], atol=1e-5)
    assert rel_sig.abs().max() > 0
    assert torch.allclose(rel_sig, rel_soft, rtol=1e-4, atol=1e-5 * rel_sig.abs().max().item())
    head = sig.base.net.classifier
    assert isinstance(head, nn.Linear) and head.out_features == 5, "the head is restored after LRP"
    rel0, logit0 = build_explainer("lrp", zero_bias=True).relevance(soft, x, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(logit0, torch.logsumexp(z[:, [0, 1, 2, 4]], 1), atol=1e-4)
    assert torch.allclose(rel0.sum((1, 2, 3)), logit0, rtol=0.01, atol=1e-6)


@pytest.mark.parametrize("params, message", [
    ({"output_index": 5, "output_kind": "sigmoid"},
     r"models\.params\.tiny_heads: output_index 5 is out of range: the model has 5 outputs \(0 to 4\)$"),
    ({"output_class": "Pneumothorax"},
     r"output_class 'Pneumothorax' is not an output of model tiny_heads; outputs: \['Atelectasis', 'Cardiomegaly', "
     r"'Effusion', 'Pneumonia', 'Edema'\]$"),
    ({"output_index": 3, "output_kind": "tanh"}, r"output_kind 'tanh' is not one of \['softmax', 'sigmoid'\]"),
    ({"output_index": 3, "output_class": "Pneumonia"},
     r"give output_index \(3\) or output_class \('Pneumonia'\), not both"),
    ({"output_kind": "sigmoid"}, r"output_kind 'sigmoid' needs output_index or output_class: the model has 5 outputs"),
    ({"output_index": -1}, r"output_index -1 must be an integer >= 0"),
    ({"outputs": 1, "output_kind": "softmax"}, r"output_kind 'softmax' needs two or more outputs"),
])
def test_bad_output_params_are_one_line_errors_before_any_forward_pass(tiny, params, message, monkeypatch):
    def forbidden(self, x):
        raise AssertionError("a forward pass before the output params were checked")
    monkeypatch.setattr(TinyHeads, "forward", forbidden)
    with pytest.raises(ValueError, match=message) as err:
        build_model(tiny, **params)
    assert "\n" not in str(err.value)


def test_output_class_needs_output_names():
    with pytest.raises(ValueError, match="model resnet50 declares no output names .* give output_index instead"):
        build_model("resnet50", num_classes=5, output_class="Pneumonia")


@pytest.mark.parametrize("override, message", [
    ("models.params.resnet50.output_index=7",
     r"models\.params\.resnet50: output_index 7 is out of range: the model has 2 outputs"),
    ("models.params.resnet50={num_classes=5,output_index=3,output_kind='tanh'}",
     r"models\.params\.resnet50: output_kind 'tanh' is not one of"),
    ("models.params.resnet50={num_classes=5,output_index=3,output='centred'}",
     r"models\.params\.resnet50: output = 'centred' with a softmax head"),
])
def test_the_config_check_refuses_bad_output_params_before_any_work(override, message):
    with pytest.raises(ConfigError, match=message):
        check_params(load_config(overrides=[override], preset="smoke"))


def test_the_config_check_accepts_output_params():
    check_params(load_config(overrides=["models.params.resnet50={num_classes=5,output_index=3,output_kind='sigmoid',"
                                        "output='centred'}"], preset="smoke"))
