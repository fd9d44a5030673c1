"""Classifiers taking (N,1,H,W) images in [0,1] and returning logits (N,2): builders (a registry),
training, checkpoints, precision (bf16 where the device runs it natively), layout (channels-last where
convolutions run faster so) and output_head (any head's chosen output as the two logits)."""
from . import xrv  # registers xrv_densenet121 (torchxrayvision is imported only when it is built)
from .builders import MODELS, XrayClassifier, build_model, register_model
from .checkpoints import load_trained
from .layout import place_model
from .output_head import OutputHead, select_output
from .training import (TrainConfig, TrainResult, classifier_report, load_checkpoint, predict_proba,
                       save_checkpoint, train_classifier)

__all__ = ["MODELS", "OutputHead", "TrainConfig", "TrainResult", "XrayClassifier", "build_model", "classifier_report",
           "load_checkpoint", "load_trained", "place_model", "predict_proba", "register_model", "save_checkpoint", "select_output",
           "train_classifier"]
