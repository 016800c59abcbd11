"""The chain rule made visible: the Jacobian of an MLP is the product of its layers' Jacobians.

    python examples/chain_rule_jacobians.py

For y = f_L(...f_2(f_1(x))), J = J_L(h_{L-1}) ... J_2(h_1) J_1(x). Each J_p is
computed by tapegrad.jacobian on one layer alone; their product is compared
with the Jacobian of the whole network.
"""
import numpy as np

import tapegrad as tg
from tapegrad import nn

model = nn.MLP([4, 6, 5, 3], activation="tanh", rng=0, dtype=np.float64)
x = np.random.default_rng(1).normal(size=4)

product = np.eye(4)
h = x
for i, layer in enumerate(model):
    J = np.asarray(tg.jacobian(lambda v, layer=layer: layer(v), h))  # shape (out, in)
    print(f"layer {i} {type(layer).__name__:6s} Jacobian {J.shape}")
    product = J @ product
    with tg.no_grad():
        h = layer(tg.Variable(h)).numpy()

whole = tg.jacobian(lambda v: model(v), x)
err = np.max(np.abs(product - whole))
print("product of layer Jacobians:\n", product)
print(f"max |product - whole-network Jacobian| = {err:.2e}")
assert err < 1e-12
