"""LRP on architectures zennit has no canonizer for (DenseNets: batch norm before convolutions,
concatenated features) is refused with a message naming the architecture, never returned unchecked;
the supported ones still conserve relevance (test_explainer_contract.test_lrp_conserves_relevance)."""
import pytest
import torch

from cxr_xai_bench.explainers import build_explainer
from cxr_xai_bench.models import build_model

CASES = [("densenet121", {}), ("torchvision", {"arch": "efficientnet_b0"}), ("torchvision", {"arch": "resnet18"}),
         ("xrv_densenet121", {"weights": "", "resolution": 0})]


@pytest.mark.parametrize("name,params", CASES)
def test_lrp_refuses_unsupported_architectures(name, params):
    m = build_model(name, **params).eval()
    with pytest.raises(ValueError, match=f"lrp does not support architecture '{m.arch}'"):
        build_explainer("lrp").explain(m, torch.rand(2, 1, 32, 32), torch.tensor([0, 1]))


def test_supported_architecture_still_explained():
    m = build_model("resnet50", head="compact").eval()
    maps = build_explainer("lrp").explain(m, torch.rand(2, 1, 32, 32), torch.tensor([0, 1]))
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
