"""Neural-network layers, losses and the training loop.

``Linear.weight`` has shape ``(in_features, out_features)``: the forward is
``x @ W + b``. See ``layers.py`` for the ``Layer`` base class.
"""
from .init import manual_seed, default_generator  # noqa: F401
from .layers import (  # noqa: F401
    Layer, Linear, ReLU, LeakyReLU, Tanh, Sigmoid, GELU, Softmax, Dropout, LayerNorm, Sequential, MLP, Identity,
    functional_call, engine_of, ACTIVATIONS, Parameter, ModuleList, ModuleDict, Flatten, Embedding, BatchNorm1d,
)
from .losses import (  # noqa: F401
    mse_loss, l1_loss, cross_entropy, binary_cross_entropy_with_logits,
    MSELoss, L1Loss, CrossEntropyLoss, BCEWithLogitsLoss, get_loss,
    nll_loss, binary_cross_entropy, huber_loss, NLLLoss, BCELoss, HuberLoss,
)
from .training import History, fit, evaluate, predict, accuracy  # noqa: F401
from .serialization import save, load, save_checkpoint, load_checkpoint  # noqa: F401
from . import init  # noqa: F401
