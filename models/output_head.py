"""Any output layout as the suite's two logits: one output of a multi-class (softmax), multi-label
(sigmoid) or one-logit head becomes class 1 (pneumonia).

Parameters of every model (`models.params.<model>`, taken by `build_model`, never by the builder):
- `output_index` (int): the output that is pneumonia; or `output_class` (str): its name among the
  names the model declares (`model.output_names`, a list, one name per output);
- `output_kind`: how the head's outputs become probabilities, "softmax" (one distribution over
  all outputs; the default for two or more outputs) or "sigmoid" (one independent probability per
  output, CheXpert-style multi-label; the only kind of a one-logit head, whose index defaults to 0).

From the head's outputs z (N,M) and the chosen output k, the model returns two logits:
- softmax: (logsumexp_{j!=k} z_j, z_k); their softmax is exactly (1 - p_k, p_k), p_k = softmax(z)_k;
- sigmoid or one logit: (0, z_k); their softmax is (1 - sigmoid(z_k), sigmoid(z_k)).
So the class-1 logit, the score every gradient explainer explains and LRP starts from, is z_k
itself, and the pneumonia probability (accuracy, AUROC, LIME, occlusion and the perturbation
metrics) is the head's own p_k. With `output = "centred"` (sigmoid heads only; the builder then
computes its raw outputs) the two logits are (-z_k/2, z_k/2), as `xrv_densenet121` returns: the
same probability, and class 0 explains -z_k instead of a constant 0 (a sigmoid head's class 0 in
the raw layout has no gradient, so gradient maps of class 0 are zero there).

`OutputHead` wraps the built model and passes through what explainers read from it (the Grad-CAM
layer, `arch`, `preprocess`, `input_bounds`, the head layer), and its state_dict is the wrapped
model's (same keys), so checkpoints and a user's state_dict load as for the model alone. For LRP
(`centred_head`) a sigmoid head's output k is folded into a two-row linear layer (exact for both
classes); a softmax head keeps its layer and adds the selection after it, which passes the class-1
relevance z_k to output k alone and splits class 0's logsumexp over the other outputs by their
softmax weights (which sum to one, so relevance is conserved).
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

OUTPUT_PARAMS = ("output_index", "output_class", "output_kind")
KINDS = ("softmax", "sigmoid")

__all__ = ["KINDS", "OUTPUT_PARAMS", "OutputHead", "check_output_params", "output_position", "select_output",
           "two_logit_linear"]


def output_position(names: Sequence[str], name: str, what: str, owner: str) -> int:
    """The position of output `name` among `names` (a model's output names), or a one-line error
    naming the outputs there are (empty names, unused outputs, left out)."""
    names = list(names)
    if not name or name not in names:
        raise ValueError(f"{what} {name!r} is not an output of {owner}; outputs: {[n for n in names if n]}")
    return names.index(name)


def two_logit_linear(linear: nn.Linear, row: int, centred: bool) -> nn.Linear:
    """A linear layer whose two outputs are (0, z) (or (-z/2, z/2) when `centred`) of output `row` of
    `linear`: one sigmoid output of a multi-label head as the suite's two logits, as one layer."""
    w = linear.weight.detach()[row]
    b = linear.bias.detach()[row] if linear.bias is not None else torch.zeros((), dtype=w.dtype, device=w.device)
    head = nn.Linear(w.numel(), 2, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        if centred:
            head.weight.copy_(torch.stack([-w / 2, w / 2]))
            head.bias.copy_(torch.stack([-b / 2, b / 2]))
        else:
            head.weight.copy_(torch.stack([torch.zeros_like(w), w]))
            head.bias.copy_(torch.stack([torch.zeros_like(b), b]))
    return head


def _default_count(builder: Callable[..., Any] | None, params: Mapping[str, Any]) -> int | None:
    """How many outputs a builder with a `num_classes` parameter gives for `params` (None: unknown)."""
    try:
        sig = inspect.signature(builder) if builder is not None else None
    except (TypeError, ValueError):
        return None
    if sig is None or "num_classes" not in sig.parameters:
        return None
    count = params.get("num_classes", sig.parameters["num_classes"].default)
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def check_output_params(params: Mapping[str, Any], builder: Callable[..., Any] | None = None,
                        count: int | None = None) -> None:
    """One-line ValueError for a bad `output_index` / `output_class` / `output_kind` in a model's
    params, before the model is built. With a builder taking `num_classes` (the built-in ones) the
    index is also checked against the number of outputs; names are checked once the model is built."""
    index, name, kind = (params.get(k) for k in OUTPUT_PARAMS)
    if index is None and name is None and kind is None:
        return  # the model's own two logits
    if kind is not None and kind not in KINDS:
        raise ValueError(f"output_kind {kind!r} is not one of {list(KINDS)} (how the head's outputs become "
                         f"probabilities: one softmax over all outputs, or one sigmoid per output)")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ValueError(f"output_index {index!r} must be an integer >= 0 (the position of the pneumonia output)")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"output_class {name!r} must be a non-empty string (a name among the model's outputs)")
    if index is not None and name is not None:
        raise ValueError(f"give output_index ({index}) or output_class ({name!r}), not both")
    if params.get("output") == "centred" and kind == "softmax":
        raise ValueError("output = 'centred' with output_kind = 'softmax': the class-1 logit would be half the "
                         "log-odds of p_k, not the output's logit; use output = 'raw' (centring is for sigmoid heads)")
    count = count if count is not None else _default_count(builder, params)
    if count is None:
        return
    if index is not None and index >= count:
        raise ValueError(f"output_index {index} is out of range: the model has {count} outputs (0 to {count - 1})")
    if count == 1 and kind == "softmax":
        raise ValueError("output_kind 'softmax' needs two or more outputs; a one-logit head is 'sigmoid'")
    if count > 1 and index is None and name is None:
        raise ValueError(f"output_kind {kind!r} needs output_index or output_class: the model has {count} outputs")
    if params.get("output") == "centred" and count > 1 and kind != "sigmoid":
        raise ValueError("output = 'centred' with a softmax head (the default for several outputs): the class-1 "
                         "logit would be half the log-odds of p_k; use output = 'raw', or output_kind = 'sigmoid'")


def _output_count(model: nn.Module) -> int | None:
    """How many outputs the model declares: its output names, its head layer's out_features, or
    `num_outputs`; None when it declares none (then checked on each forward)."""
    names = getattr(model, "output_names", None)
    if names is not None:
        return len(names)
    head = getattr(model, "head_layer_name", None)
    if head:
        for owner in (getattr(model, "net", None), model):
            try:
                return int(owner.get_submodule(head).out_features)
            except (AttributeError, TypeError, ValueError):
                continue
    count = getattr(model, "num_outputs", None)
    return count if isinstance(count, int) else None


@dataclass(frozen=True)
class OutputChoice:
    """Which output is pneumonia and how the head turns outputs into probabilities."""
    index: int | None  # None: a head whose size is known only at the first forward (one logit -> 0)
    kind: str | None  # None: decided by the number of outputs at forward (one: sigmoid, more: softmax)
    name: str | None = None
    centred: bool = False

    def resolve(self, count: int) -> tuple[int, str]:
        kind = self.kind or ("sigmoid" if count == 1 else "softmax")
        index = self.index if self.index is not None else (0 if count == 1 else None)
        if index is None:
            raise ValueError(f"the model has {count} outputs: set models.params.<model>.output_index or output_class")
        if index >= count:
            raise ValueError(f"output_index {index} is out of range: the model returned {count} outputs "
                             f"(0 to {count - 1})")
        if kind == "softmax" and count == 1:
            raise ValueError("output_kind 'softmax' needs two or more outputs; a one-logit head is 'sigmoid'")
        if kind == "softmax" and self.centred:
            raise ValueError("output = 'centred' needs a sigmoid head; use output = 'raw' with a softmax head")
        return index, kind


class _SoftmaxPair(nn.Module):
    """(N,M) softmax head outputs -> (logsumexp of the others, z_k)."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = self.index
        others = torch.cat([z[:, :k], z[:, k + 1:]], 1)
        return torch.stack([torch.logsumexp(others, 1), z[:, k]], 1)


def two_logits(z: torch.Tensor, index: int, kind: str, centred: bool = False) -> torch.Tensor:
    """The suite's two logits from head outputs z (N,M) (see the module docstring)."""
    if kind == "softmax":
        return _SoftmaxPair(index)(z)
    zk = z[:, index]
    if centred:
        return torch.stack([-zk / 2, zk / 2], 1)
    return torch.stack([torch.zeros_like(zk), zk], 1)


class OutputHead(nn.Module):
    """A model with any output layout as (N,1,H,W) in [0,1] -> logits (N,2) (see the module docstring).

    Every attribute the wrapped model has and this one does not (`gradcam_layer`, `arch`,
    `preprocess`, `input_bounds`, `net`, `head_layer_name`, `mean`, ...) is the wrapped model's;
    `state_dict` and `load_state_dict` are the wrapped model's, with its keys.
    """

    def __init__(self, base: nn.Module, choice: OutputChoice):
        super().__init__()
        self.base = base
        self.choice = choice
        self.output_kind = "centred" if choice.centred else getattr(base, "output_kind", "raw")

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if name == "base" or "base" not in modules:
                raise
            return getattr(modules["base"], name)

    def state_dict(self, *args, **kwargs):
        return self.base.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, *args, **kwargs):
        return self.base.load_state_dict(state_dict, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.base(x)
        if z.dim() != 2:
            raise ValueError(f"model {getattr(self.base, 'arch', type(self.base).__name__)} returned outputs shaped "
                             f"{tuple(z.shape)}; output_index needs (N, outputs)")
        index, kind = self.choice.resolve(z.shape[1])
        return two_logits(z, index, kind, self.choice.centred)

    @contextlib.contextmanager
    def centred_head(self) -> Iterator[nn.Module]:
        """The network with the two logits as its last layer, on `preprocess`'s input (for LRP): a
        sigmoid head's output folded into a two-row linear layer in place of the head layer (restored
        after the block); a softmax head followed by the selection (see the module docstring)."""
        base = self.base
        net, head_name = getattr(base, "net", None), getattr(base, "head_layer_name", None)
        if net is None or not head_name:
            raise ValueError(f"model {getattr(base, 'arch', type(base).__name__)} declares no head layer "
                             f"(net and head_layer_name): LRP cannot start from its chosen output")
        head = net.get_submodule(head_name)
        index, kind = self.choice.resolve(head.out_features)
        inner = base.centred_head() if hasattr(base, "centred_head") else contextlib.nullcontext(net)
        with inner as net:
            if kind == "softmax":
                yield nn.Sequential(net, _SoftmaxPair(index))
                return
            parent, _, child = head_name.rpartition(".")
            owner = net.get_submodule(parent) if parent else net
            setattr(owner, child, two_logit_linear(head, index, self.choice.centred))
            try:
                yield net
            finally:
                setattr(owner, child, head)


def select_output(model: nn.Module, output_index: int | None = None, output_class: str | None = None,
                  output_kind: str | None = None, centred: bool = False) -> OutputHead:
    """`model` (any outputs (N,M)) wrapped to return the suite's two logits from one output; bad values
    are one-line ValueErrors here, before any forward pass (the module docstring says what is returned)."""
    count = _output_count(model)
    params = {"output_index": output_index, "output_class": output_class, "output_kind": output_kind,
              "output": "centred" if centred else "raw"}
    check_output_params(params, count=count)
    arch = getattr(model, "arch", type(model).__name__)
    if output_class is not None:
        names = getattr(model, "output_names", None)
        if names is None:
            raise ValueError(f"output_class {output_class!r}: model {arch} declares no output names "
                             f"(an output_names attribute); give output_index instead")
        output_index = output_position(names, output_class, "output_class", f"model {arch}")
    if count is None and output_index is None and output_kind != "sigmoid":
        raise ValueError(f"model {arch} declares no number of outputs (output_names, head_layer_name or "
                         f"num_outputs): give output_index")
    choice = OutputChoice(output_index, output_kind, output_class, centred)
    if count is not None:
        choice.resolve(count)
    return OutputHead(model, choice)
