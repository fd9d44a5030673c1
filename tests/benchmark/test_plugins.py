"""Plug-ins (benchmark/run/plugins.py): a module or .py file outside the project, or an installed
package's entry point, registers explainers / metrics / datasets / models with the suite's decorators;
`benchmark list` shows them; a plug-in that fails to import or takes a name gets an error naming it.
The docs' "Adding a method" example (docs/tutorials/your-method.md) is docs/examples/my_explainer.py, checked here."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from benchmark.metrics import METRICS
from benchmark.run import plugins
from benchmark.run.plugins import PluginError, load_plugins
from cxr_xai_bench.explainers import EXPLAINERS, build_explainer
from cxr_xai_bench.models import MODELS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "my_explainer.py"

PLUGIN = textwrap.dedent('''
    import torch
    from benchmark.metrics import register_metric
    from cxr_xai_bench.explainers import Explainer, register_explainer

    @register_explainer("{exp}")
    class Mine(Explainer):
        signed = False

        def _explain(self, model, images, targets):
            return images[:, 0] * 0.5

    @register_metric("{metric}", category="localisation", higher_is_better=True)
    def mine(model, images, targets, maps, masks, has_mask, **_):
        """Mean of the map (a test metric)."""
        return maps.flatten(1).mean(1)
''')


def _cli(*args, cwd, env=None):
    env = {**os.environ, "TQDM_DISABLE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_list_shows_a_path_plugin(tmp_path):
    (tmp_path / "my_methods.py").write_text(PLUGIN.format(exp="plug_exp", metric="plug_metric"))
    r = _cli("list", "--plugin", "./my_methods.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "plug_exp (unsigned)" in r.stdout
    assert re.search(r"plug_metric\s+localisation\s+higher is better\s+Mean of the map", r.stdout)
    assert "plug-ins:   cxr_plugin_my_methods" in r.stdout


def test_entry_point_plugin_is_loaded_at_startup(tmp_path):
    """A tiny installed package: its .dist-info/entry_points.txt names a module in the group; no pip needed."""
    site = tmp_path / "site"
    (site / "ep_plugin_pkg").mkdir(parents=True)
    (site / "ep_plugin_pkg" / "__init__.py").write_text(PLUGIN.format(exp="ep_exp", metric="ep_metric"))
    info = site / "ep_plugin_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\nmine = ep_plugin_pkg\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    r = _cli("list", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "ep_exp (unsigned)" in r.stdout and "ep_metric" in r.stdout
    assert "plug-ins:   ep_plugin_pkg" in r.stdout


def test_bad_plugin_cli_error_names_it(tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_module_xyz\n")
    r = _cli("list", "--plugin", "./broken.py", cwd=tmp_path)
    assert r.returncode == 2
    assert "plug-in './broken.py' failed to import" in r.stderr and "no_such_module_xyz" in r.stderr


def test_import_error_names_the_plugin(tmp_path, clean_registries):
    bad = tmp_path / "bad_import.py"
    bad.write_text(PLUGIN.format(exp="half_exp", metric="half_metric") + "\nraise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"plug-in '.*bad_import.py' failed to import: RuntimeError: boom"):
        load_plugins([str(bad)], entry_points=False)
    # what it registered before failing is undone
    assert "half_exp" not in EXPLAINERS and "half_metric" not in METRICS
    with pytest.raises(PluginError, match="plug-in 'no_such_pkg.methods' failed to import: ModuleNotFoundError"):
        load_plugins(["no_such_pkg.methods"], entry_points=False)
    with pytest.raises(PluginError, match="FileNotFoundError"):
        load_plugins([str(tmp_path / "missing.py")], entry_points=False)


@pytest.mark.parametrize("code, what", [
    ("from cxr_xai_bench.explainers import Explainer, register_explainer\n@register_explainer('random')\nclass R(Explainer):\n"
     "    pass\n", "explainer 'random' registered twice"),
    ("from benchmark.metrics import register_metric\n@register_metric('iou', 'localisation', True)\n"
     "def f(**kw):\n    pass\n", "metric 'iou' registered twice"),
    ("from cxr_xai_bench.models import register_model\n@register_model('resnet50')\ndef f(**kw):\n    pass\n",
     "registers model 'resnet50', which is already taken"),
])
def test_taken_name_names_the_plugin(tmp_path, clean_registries, code, what):
    originals = {k: dict(r) for k, r in (("e", EXPLAINERS), ("m", METRICS), ("model", MODELS))}
    f = tmp_path / "taker.py"
    f.write_text(code)
    with pytest.raises(PluginError, match=rf"plug-in '.*taker.py'.*{re.escape(what)}"):
        load_plugins([str(f)], entry_points=False)
    assert dict(EXPLAINERS) == originals["e"] and dict(METRICS) == originals["m"] and dict(MODELS) == originals["model"]


def test_path_plugin_has_a_stable_module_name_with_source(tmp_path, clean_registries):
    from benchmark.store.code import code_closure
    f = tmp_path / "stable_one.py"
    f.write_text(PLUGIN.format(exp="stable_exp", metric="stable_metric"))
    (name,) = load_plugins([str(f)], entry_points=False)
    assert name == "cxr_plugin_stable_one" and EXPLAINERS["stable_exp"].__module__ == name
    assert load_plugins([str(f)], entry_points=False) == [name]  # once per process
    v = code_closure(name)
    assert v == code_closure(name) and v != code_closure("cxr_xai_bench.explainers.registry")


def test_readme_example_is_the_docs_file_and_runs(clean_registries):
    """The docs' "Adding a method" code block (docs/tutorials/your-method.md, moved there from the
    README) is docs/examples/my_explainer.py, byte for byte, and the plug-in it defines loads and
    explains / scores a batch."""
    page = (ROOT / "docs" / "tutorials" / "your-method.md").read_text()
    block = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    assert block == EXAMPLE.read_text()
    load_plugins([str(EXAMPLE)], entry_points=False)
    from benchmark.metrics import score_maps
    from cxr_xai_bench.models import build_model
    torch.manual_seed(0)
    model = build_model("resnet50").eval()
    x = torch.rand(2, 1, 32, 32)
    maps = build_explainer("input_x_gradient").explain(model, x, torch.tensor([1, 0]))
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, 4:12, 4:12] = True
    table = score_maps(model, x, [1, 0], maps, masks, metrics=["lesion_share"])
    assert table.value.iloc[0] >= 0 and table.value.isna().tolist() == [False, True]
