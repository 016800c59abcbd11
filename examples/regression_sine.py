"""Regression on a synthetic function: fit y = sin(3x) + noise with a small tanh MLP and Adam.

    python examples/regression_sine.py
"""
import numpy as np

from tapegrad import nn, optim

rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, (512, 1))
y = np.sin(3 * X) + rng.normal(0, 0.05, X.shape)
nn.manual_seed(0)
model = nn.MLP([1, 32, 32, 1], activation="tanh")
opt = optim.Adam(model.parameters(), lr=0.01)
history = nn.fit(model, X, y, loss=nn.mse_loss, optimizer=opt, epochs=100, batch_size=64, progress=False)
grid = np.linspace(-1, 1, 9)[:, None]
print("MSE: first epoch %.4f, last %.4f" % (history["loss"][0], history["loss"][-1]))
print("max |model - sin(3x)| on a grid: %.3f" % np.max(np.abs(nn.predict(model, grid) - np.sin(3 * grid))))
