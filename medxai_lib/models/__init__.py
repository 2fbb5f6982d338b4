"""Models: CAM-ready DenseNets (more models join as notebooks need them)."""
from medxai_lib.models.densenet import (CamReadyDenseNet, PretrainedWeightsUnavailable, densenet169,
                                        densenet_block_layers, densenet_small)

__all__ = ["CamReadyDenseNet", "PretrainedWeightsUnavailable", "densenet169", "densenet_block_layers",
           "densenet_small"]
