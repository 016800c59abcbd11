"""Two moons: train an MLP and plot its decision boundary (needs matplotlib).

    python examples/moons_decision_boundary.py [--out DIR]

The plot goes to DIR/moons_boundary.png (default: a new temporary folder,
printed at the end); nothing is written to the current folder.
"""
import argparse
import os
import tempfile

import numpy as np

from tapegrad import data, nn, optim

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", metavar="DIR", default=None,
                    help="folder for moons_boundary.png (created if missing; default: a new temporary folder)")
args = parser.parse_args()

X, y = data.make_moons(600, noise=0.15, seed=0)
X_train, X_test, y_train, y_test = data.train_test_split(X, y, seed=0)
nn.manual_seed(0)
model = nn.MLP([2, 32, 32, 2], activation="tanh")
opt = optim.Adam(model.parameters(), lr=0.01)
nn.fit(model, X_train, y_train, loss=nn.cross_entropy, optimizer=opt, epochs=60, batch_size=32, progress=False)
print("test accuracy:", nn.evaluate(model, X_test, y_test, nn.cross_entropy)["accuracy"])

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

xx, yy = np.meshgrid(np.linspace(-1.5, 2.5, 200), np.linspace(-1, 1.5, 200))
logits = nn.predict(model, np.c_[xx.ravel(), yy.ravel()])
plt.contourf(xx, yy, logits.argmax(1).reshape(xx.shape), alpha=0.3, cmap="coolwarm")
plt.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm")
out_dir = args.out if args.out is not None else tempfile.mkdtemp(prefix="tapegrad-moons-")
os.makedirs(out_dir, exist_ok=True)
out = os.path.join(out_dir, "moons_boundary.png")
plt.savefig(out)
print("saved", out)
