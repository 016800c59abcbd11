"""tapegrad.data: data sets, splitting, batching, file loading."""
import numpy as np
import pytest

from tapegrad import data


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 1 and set(np.unique(y)) == set(range(10))


def test_synthetic_sets_are_deterministic():
    for make in (data.make_moons, data.make_spirals):
        X, y = make(101, seed=3)
        X2, y2 = make(101, seed=3)
        assert X.shape == (101, 2) and y.shape == (101,)
        np.testing.assert_array_equal(X, X2)
        np.testing.assert_array_equal(y, y2)
        assert not np.array_equal(X, make(101, seed=4)[0])
        assert set(np.unique(y)) == {0, 1}
    _, y = data.make_spirals(90, n_classes=3)
    assert np.bincount(y).tolist() == [30, 30, 30]
    with pytest.raises(ValueError):
        data.make_moons(0)
    with pytest.raises(ValueError):
        data.make_spirals(10, n_classes=1)


def test_train_test_split_stratified():
    y = np.repeat(np.arange(3), [50, 30, 20])
    X = np.arange(100.0)[:, None]
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=0.2, seed=0)
    assert len(Xte) == 20 and len(Xtr) == 80
    assert np.bincount(yte).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([Xtr, Xte])[:, 0].tolist()) == list(range(100))  # a partition
    np.testing.assert_array_equal(y[Xte[:, 0].astype(int)], yte)
    again = data.train_test_split(X, y, test_size=0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (Xtr, Xte, ytr, yte)))
    assert not np.array_equal(data.train_test_split(X, y, seed=1)[1], Xte)
    _, Xte2, _, _ = data.train_test_split(X, y, test_size=25, stratify=False)
    assert len(Xte2) == 25
    _, _, _, yf = data.train_test_split(X, y.astype(float) + 0.5, test_size=0.1)  # float target: unstratified
    assert len(yf) == 10


def test_train_test_split_errors():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        data.train_test_split(X, np.zeros(9, int))
    with pytest.raises(ValueError, match="test_size"):
        data.train_test_split(X, np.zeros(10, int), test_size=1.5)
    with pytest.raises(ValueError, match="test_size"):
        data.train_test_split(X, np.zeros(10, int), test_size=0)


def test_dataloader():
    X = np.arange(10.0)[:, None]
    y = np.arange(10)
    batches = list(data.DataLoader(X, y, batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2] and len(data.DataLoader(X, y, batch_size=4)) == 3
    np.testing.assert_array_equal(batches[0][1], [0, 1, 2, 3])
    dl = data.DataLoader(X, y, batch_size=4, shuffle=True, seed=0, drop_last=True)
    assert len(dl) == 2
    e1 = [b[1].tolist() for b in dl]
    e2 = [b[1].tolist() for b in dl]
    assert [len(b) for b in e1] == [4, 4] and e1 != e2  # a new order each epoch
    for b in dl:
        np.testing.assert_array_equal(b[0][:, 0], b[1])  # X and y stay aligned
    dl2 = data.DataLoader(X, y, batch_size=4, shuffle=True, seed=0, drop_last=True)
    assert [b[1].tolist() for b in dl2] == e1 and [b[1].tolist() for b in dl2] == e2
    assert len(list(data.DataLoader(X, batch_size=3))) == 4
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(X, y, batch_size=0)
    with pytest.raises(ValueError, match="10 samples but y has 3"):
        data.DataLoader(X, y[:3])


def test_load_array_file_npz_and_csv(tmp_path):
    npz = tmp_path / "d.npz"
    np.savez(npz, X=np.ones((4, 2)), y=np.array([0, 1, 0, 1]))
    X, y = data.load_array_file(npz)
    assert X.shape == (4, 2) and y.tolist() == [0, 1, 0, 1]
    csv = tmp_path / "d.csv"
    csv.write_text("a,label,b\n1,cat,2\n3,dog,4\n5,cat,6\n")
    X, y = data.load_array_file(csv, label_column="label")
    assert X.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [0, 1, 0]
    num = tmp_path / "n.csv"
    num.write_text("1,2,7\n3,4,8\n")
    X, y = data.load_array_file(num, label_column="0")
    assert X.tolist() == [[2, 7], [4, 8]] and y.tolist() == [1, 3] and y.dtype == np.int64
    plain = tmp_path / "p.csv"
    plain.write_text("0.5,1.5,0.25\n1,2,0.75\n")
    X, y = data.load_array_file(plain)
    assert X.shape == (2, 2) and y.dtype == np.float64 and y.tolist() == [0.25, 0.75]


def test_load_array_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.load_array_file(tmp_path / "none.csv")
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.ones((2, 2)))
    with pytest.raises(ValueError, match="no array 'X'"):
        data.load_array_file(bad)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match="label column 'c' not found.*columns: a, b"):
        data.load_array_file(csv, label_column="c")
    ragged = tmp_path / "r.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(ValueError, match="row 2 has 1 columns"):
        data.load_array_file(ragged)
    txt = tmp_path / "d.txt"
    txt.write_text("1,2\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        data.load_array_file(txt)
