"""Training, in one package: the fit loop (:mod:`.fit`), the notebooks' shared cached recipes
(:mod:`.recipes`), MDNet's joint training (:mod:`.mdnet`) and Patho-GAN's (:mod:`.pathogan`).
Import direction: data -> models -> train -> explain -> evaluate -> viz (``tests/test_layering.py``)."""
from medxai_lib.models.inference import predict_logits, probabilities
from medxai_lib.train.fit import FitResult, TrainConfig, distributed_rank_and_size, fit, weights_digest

__all__ = ["FitResult", "TrainConfig", "distributed_rank_and_size", "fit", "predict_logits", "probabilities",
           "weights_digest"]
