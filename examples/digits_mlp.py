"""Classify the 8x8 scikit-learn digits with a tapegrad MLP (needs scikit-learn).

    python examples/digits_mlp.py [--out DIR]

The trained parameters go to DIR/digits_mlp.npz (default: a new temporary
folder, printed at the end); nothing is written to the current folder.
"""
import argparse
import os
import tempfile

import tapegrad as tg
from tapegrad import data, nn, optim

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", metavar="DIR", default=None,
                    help="folder for digits_mlp.npz (created if missing; default: a new temporary folder)")
args = parser.parse_args()

X, y = data.load_digits()
X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.2, seed=0)
nn.manual_seed(0)
model = nn.MLP([64, 64, 64, 10], activation="relu", dtype="float32")  # as `tapegrad train`
print(model)
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
sched = optim.CosineAnnealingLR(opt, T_max=40)
history = nn.fit(model, X_train, y_train, loss=nn.cross_entropy, optimizer=opt, epochs=40, batch_size=32,
                 validation_data=(X_test, y_test), scheduler=sched, progress=False)
print("test:", nn.evaluate(model, X_test, y_test, nn.cross_entropy))
out_dir = args.out if args.out is not None else tempfile.mkdtemp(prefix="tapegrad-digits-")
os.makedirs(out_dir, exist_ok=True)
path = os.path.join(out_dir, "digits_mlp.npz")
nn.save(model, path)
print("saved", path)
