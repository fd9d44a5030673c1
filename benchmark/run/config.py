"""Run configuration: TOML validated into dataclasses, with `--set key=value` overrides.

Unknown keys and wrong types are errors that name the key and the allowed keys.
"""
from __future__ import annotations

import logging
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config_merge import is_resolved, merge, merge_resolved, preset_keys_overridden
from .config_types import ConfigError, build_section as _build, parse_value as _parse_value  # noqa: F401 (ConfigError: re-exported)
from .presets import PRESETS
from ..store.instances import architecture

log = logging.getLogger(__name__)


@dataclass
class RunSection:
    name: str = "phantom-default"
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # 0: torch's default
    deterministic: bool = True  # torch.use_deterministic_algorithms (warn-only where a kernel has none)
    shard_size: int = 64  # test images per explain/score job: the unit of resume and of distribution
    maps_dtype: str = "float16"  # stored maps: "float16" (scaled per map) or "float32"
    executor: str = "local"  # "local" (this process) or "ray"
    ray_address: str = ""  # Ray cluster address for executor "ray"; "" starts a local Ray instance
    ray_workers: int = 0  # workers of a local Ray instance (0: one per CPU core)
    # executor "ray": train each model as one Ray task (on a GPU worker when run.device is cuda),
    # so a driver without a GPU can run a paper-scale run
    train_on_workers: bool = False
    # extra training seeds: each model is trained again per seed and metric seed_repeatability
    # compares its maps with the main seed's (doubles training per seed; off by default)
    repeat_seeds: list[int] = field(default_factory=list)
    # plug-ins to import before the run (dotted module names or .py paths; see benchmark/run/plugins.py):
    # they register explainers, metrics, datasets and models; `--plugin` on the CLI adds to this list
    plugins: list[str] = field(default_factory=list)
    # set by load_config: the config.toml a run writes is complete and carries resolved = true, so
    # loading it takes its tables as written (a table `--set` replaced whole stays whole) instead of
    # merging them key by key into the defaults as it does for a user's file
    resolved: bool = False
    # model passes that only classify (LIME's and occlusion's samples, the faithfulness metrics'
    # perturbed images): "auto" as train.precision; the paper preset sets "fp32". Gradients: always fp32
    forward_precision: str = "auto"


@dataclass
class DataSection:
    dataset: str = "phantom"
    root: str = ""  # dataset folder, for datasets read from disk
    size: int = 64
    # role -> the dataset's split it reads: "train" trains, "val" selects (best epoch, tuned
    # thresholds), "test" is scored; the scored split never takes part in selection (validate refuses
    # val == test, and train == val without a holdout). "" leaves a role out: without "train" the
    # run evaluates the models it is given (models.checkpoints) and trains nothing (`benchmark evaluate`);
    # without "val", tuned thresholds fall back to Otsu and the classifier table has no selection column
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "val": "val", "test": "test"})
    # fraction of the training split held out as the selection split when splits.val names the same
    # split as splits.train: a seeded hold-out stratified by label, a pure function of (run.seed,
    # dataset, split, fraction), that "val" reads and "train" never sees (train reads the rest).
    # 0: no hold-out (splits.val must then name another split). `limit` applies after carving.
    holdout: float = 0.0
    limit: dict[str, int] = field(default_factory=lambda: {"train": 2400, "val": 200, "test": 40})
    params: dict[str, Any] = field(default_factory=dict)
    skip_bad: bool = False  # skip unreadable files (listed in manifest.json) instead of stopping
    # preprocessed uint8 splits; "" turns the cache off. A 16-bit image is stored after its mapping to
    # [0,1] and the resize, as 256 levels (an 8-bit display of its window); without the cache it keeps all
    cache_dir: str = "results/cache"
    # how a non-square image and its masks (identically) become size x size: "pad" centres it in a
    # square of its long side, black (0) around; "crop" keeps the centred square (the long side's ends
    # are lost, lesions there too); "squash" stretches it (the aspect ratio is lost). Default "pad": it
    # neither distorts anatomy nor drops any of it, and square images (COVID-QU-Ex, RSNA, the phantom)
    # come out exactly as with "squash", the old behaviour, so their numbers do not change
    resize: str = "pad"
    # the values of a lesion mask file that mean lesion, for label maps with more than two values;
    # [] (default): 0/1, 0/255 and boolean masks, any non-zero is lesion; other masks are refused
    mask_values: list[int] = field(default_factory=list)
    # a lesion prior (.npy, size x size, values in [0,1]) for the mask_prior baseline, used instead of
    # the training split's mean mask: what an evaluate-only run (no training split) needs for it
    prior_file: str = ""


@dataclass
class TrainSection:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: bool = True
    # "auto": bf16 autocast where the device runs it fast (CUDA; a CPU with AMX), else "fp32"; or either
    precision: str = "auto"
    # training seeds: [] trains each model once with run.seed (names unchanged); [0, 1, 2] trains each
    # architecture once per seed (initialisation and data order; same data and budget) as instances
    # `<model>@s<seed>`, each explained and scored as a model of its own; the report adds "Across training
    # runs" (store/instances.py, report/instances.py). A model in models.checkpoints stays one instance
    seeds: list[int] = field(default_factory=list)


@dataclass
class ModelsSection:
    # VGG16 with batch norm: plain VGG16 from scratch stays at chance for several epochs on the CPU
    # budget of the default run. Grad-CAM on the 8x8 maps that 64 px images give (VGG conv4_3,
    # ResNet layer2): the last layers are 2x2 and 4x4 there, coarser than a lesion.
    names: list[str] = field(default_factory=lambda: ["vgg16_bn", "resnet50"])
    params: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "vgg16_bn": {"head": "compact", "gradcam_layer": "features.32"},
        "resnet50": {"gradcam_layer": "layer2"}})
    # ResNet50 gets 3: after 2 its LRP tied `random` at pointing game on the phantom (0.00), after 3
    # it beats it (0.12 against 0.00), the default run's conclusion (measured 2026-12-02, float32)
    train: dict[str, dict[str, Any]] = field(default_factory=lambda: {"vgg16_bn": {"epochs": 2},
                                                                      "resnet50": {"lr": 2e-3, "epochs": 3}})
    # model -> a trained classifier's file (our checkpoint, a torchvision state_dict, or, with
    # allow_pickle, a whole pickled model): the model is loaded, not trained (see models.checkpoints)
    checkpoints: dict[str, str] = field(default_factory=dict)
    # models whose checkpoint file may be unpickled whole (torch.load weights_only=False runs code
    # from the file: only for files you trust)
    allow_pickle: list[str] = field(default_factory=list)


@dataclass
class ExplainSection:
    # the baselines always run, so a reader sees the floor (random, sobel, priors) and the ceiling (oracle)
    names: list[str] = field(default_factory=lambda: ["gradcam", "lrp", "lime", "sobel", "random", "center",
                                                      "lung_prior", "mask_prior", "oracle"])
    params: dict[str, dict[str, Any]] = field(default_factory=lambda: {"lime": {"num_samples": 100}})
    target: str = "label"  # "label", "predicted" or "pneumonia"
    batch_size: int = 16
    # an explainer that needs context (lung masks, lesion masks, the training prior) that some test
    # images lack: "error" stops the run before training, naming the explainer, what is missing and
    # for how many images; "nan" runs it with that context left empty and scores those images NaN
    missing_context: str = "error"
    # model -> {"exclude": [explainers]}: explainers of `names` left out for that model (e.g. LRP,
    # which refuses DenseNet); the leaderboards show "not run" for those pairs
    per_model: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # name -> folder of maps made elsewhere (one file per image id: .npy, .npz or grey .png; see
    # explainers/folder_maps.py): each runs as explainer `name` (added to `names`), keyed by the files' bytes;
    # explain.params.<name> may set signed = true and key (the array of an .npz)
    folders: dict[str, str] = field(default_factory=dict)

    def for_model(self, model: str) -> list[str]:
        """The explainers of `names` that explain `model` (per_model's exclusions applied)."""
        left_out = set(self.per_model.get(architecture(model), {}).get("exclude", ()))  # an instance: its architecture's
        return [e for e in self.names if e not in left_out]


# randomisation re-explains every image once per stage: LIME there costs minutes on a CPU, and the
# dataset-only baselines ignore the model (their similarity is 1 by construction, shown by `center`)
SANITY_SKIP = ["lime", "lime_package", "lung_prior", "mask_prior", "oracle"]
# the anatomical priors are localisation baselines: their faithfulness cost a third of the default
# run's time and says little (`oracle` stays: deleting the true lesion is the counterfactual check)
FAITHFULNESS_SKIP = ["center", "lung_prior", "mask_prior"]
FAITHFULNESS_METRICS = ["deletion_auc", "insertion_auc", "faithfulness_correlation", "road_morf", "road_lerf"]


@dataclass
class MetricsSection:
    names: list[str] = field(default_factory=lambda: [
        "deletion_auc", "insertion_auc", "faithfulness_correlation", "road_morf", "road_lerf",
        "pointing_game", "relevance_mass", "relevance_rank", "top_k_intersection", "pixel_auroc", "pixel_auprc",
        "iou", "dice", "lung_mass", "randomisation_ssim", "randomisation_spearman", "seconds_per_image", "peak_memory_mb"])
    # cut to the CPU budget of the default run (each run / percentage / stage is one forward or
    # explain pass per image); the paper preset restores the published settings
    params: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "deletion_auc": {"steps": 8}, "insertion_auc": {"steps": 8}, "faithfulness_correlation": {"nr_runs": 10},
        "road_morf": {"percentages": [10, 50, 90]}, "road_lerf": {"percentages": [10, 50, 90]},
        "randomisation_ssim": {"max_layers": 3}, "randomisation_spearman": {"max_layers": 3}})
    # metric -> the only explainers it scores (all when absent). Randomisation re-explains every
    # image once per stage: LIME there costs minutes on a CPU, so it is left out by default.
    # metric -> explainers it does not score (it scores every other one)
    skip: dict[str, list[str]] = field(default_factory=lambda: {
        "randomisation_ssim": list(SANITY_SKIP), "randomisation_spearman": list(SANITY_SKIP),
        **{m: list(FAITHFULNESS_SKIP) for m in FAITHFULNESS_METRICS}})
    # how every localisation metric (and the IoU / Dice segmentation, tuned thresholds and cheXlocalize
    # export) reads a signed map: "positive" (its positive part, the evidence for the target),
    # "absolute" (|map|) or "raw" (as returned); the same in benchmark.metrics.score_maps(sign=)
    sign: str = "positive"
    # validation lesion images used to tune iou / dice thresholds when their threshold is "tuned"
    tune_images: int = 64
    reliability: bool = True  # report's randomised-maps and noise checks (run/randomised_maps.py, perturbed_maps.py)


@dataclass
class ReportSection:
    bootstrap: int = 1000
    confidence: float = 0.95
    overlay_images: int = 4
    latex_width: str = "textwidth"  # paper tables fit "textwidth" (table*) or "columnwidth" (table)
    # processes drawing the report's figures while the statistics run (0: one per core, at most 4;
    # 1: this process); the files are the same bytes either way (report/figure_pool.py)
    figure_workers: int = 0
    # a curve metric (deletion, insertion, ROAD) whose fully perturbed image moves the target's output
    # by less than this from the unperturbed image's, in some target class, has "no headroom": shown,
    # kept out of every verdict (report/headroom.py); in [0, 1)
    headroom_margin: float = 0.1
    # parity of two explainers is claimed only by an equivalence test (TOST, paired t) rejecting both
    # "the mean paired difference is <= -m" and ">= +m" at p < 0.05 (Holm within the pair's family),
    # m this margin in the metric's own units; 0 turns parity claims off (report/stats.py)
    equivalence_margin: float = 0.05
    # display names in tables, figures and the HTML report, {internal name: shown name}, over the
    # built-in ones (report/labels.py): e.g. a plug-in explainer's, or a journal's spelling
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    models: ModelsSection = field(default_factory=ModelsSection)
    explain: ExplainSection = field(default_factory=ExplainSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    report: ReportSection = field(default_factory=ReportSection)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override (value in TOML syntax; a bare word is a string)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key=value, e.g. train.epochs=2")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a table")
    node[parts[-1]] = _parse_value(text.strip())


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from Config.to_dict() output (how shard jobs carry it to workers)."""
    return _build(Config, data, "")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                preset: str | None = None) -> Config:
    """Defaults, then a preset, then the TOML file, then `--set` overrides, each merged key by key
    into what came before: setting one nested key (`--set data.limit.test=10`) keeps its siblings.
    A file with run.resolved = true (the config.toml of a run) is complete: its tables are taken
    as written, not merged into the defaults (see config_merge.merge_resolved). The result is marked resolved."""
    data: dict[str, Any] = Config().to_dict()
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; allowed: {sorted(PRESETS)}")
        data = merge(data, PRESETS[preset])
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            from_file = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
        clash = preset_keys_overridden(PRESETS[preset], from_file) if preset else []
        if clash:
            log.warning("config file %s overrides %d key(s) of preset %r (the file wins; use --set to choose): %s",
                        path, len(clash), preset, ", ".join(clash))
        data = (merge_resolved if is_resolved(from_file) else merge)(data, from_file)
        named = from_file.get("run", {}).get("name")
        if preset and named and not is_resolved(from_file):
            # a dataset file names its runs, the preset their budget: results/covid-qu-ex-paper/
            data["run"]["name"] = f"{named}-{preset}"
    for assignment in overrides or []:
        apply_override(data, assignment)
    cfg = _build(Config, data, "")
    cfg.run.resolved = True
    return cfg
