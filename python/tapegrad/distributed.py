"""Data-parallel training on MPI through mpi4py: ``tapegrad.distributed``.

Every rank holds a replica of the model, trains on its shard of each global
batch, and the gradients are averaged across ranks before each update::

    import tapegrad.distributed as dist
    dist.init()                                     # no-op outside mpiexec
    dist.broadcast_parameters(model, root=0)        # every replica starts equal
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
    ...  loss.backward(); opt.step()                # step() waits for the averages

``mpi4py`` (the ``distributed`` extra) is imported by :func:`init` only when
the process runs under ``mpiexec`` (or when given a communicator); the core
never imports it. Outside ``mpiexec`` everything works on one rank.

Gradients live, in reverse parameter order (the order a backward sweep
finishes them), in buckets of ``bucket_size`` bytes: one flat buffer per
bucket, of which each member's ``.grad`` is a view (PyTorch DDP's
``gradient_as_bucket_view``), so the reduction runs in place and leaves the
averages in ``.grad``; a parameter of at least a quarter of that is a bucket
of its own, reduced in place in its ``.grad`` array (unless every gradient
fits in one bucket: then one bucket, one call). After the first step the buckets are rebuilt in the order the hooks
fired. With ``Variable.register_post_accumulate_grad_hook`` in the core, a
bucket's non-blocking ``Iallreduce`` starts as soon as its last gradient is
final, while the sweep goes on with earlier layers; without it (or with
``overlap=False``) all buckets start in ``step()``. Buckets start in a fixed
order on every rank, so the same program gives the same bits run to run.
When every rank is on one node the buckets are summed in an MPI-3
shared-memory window instead of with ``Iallreduce`` (``_SharedWindow``: each
rank adds its 1/N of every bucket straight from the others' segments, in
rank order; ``DistributedOptimizer(shared_memory=False)`` opts out).

Failure: under ``init()`` an uncaught exception on one rank prints its
traceback and calls ``MPI_Abort`` (mpiexec then ends every rank), and a rank
that exits while the others wait in one of this module's collectives makes
them raise ``RuntimeError`` naming it, instead of hanging.
"""
import atexit
import functools
import hashlib
import numbers
import os
import pickle
import sys
import threading
import time
import weakref

import numpy as np

from . import _core
from ._core import Variable, is_grad_enabled
from .optim import SGD, Adam, Optimizer

__all__ = ["init", "is_initialized", "rank", "size", "barrier", "allreduce", "broadcast_parameters",
           "broadcast_optimizer_state", "broadcast_object", "check_consistent", "DistributedOptimizer"]

_OPS = ("mean", "sum", "max", "min")
_ENV = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
_DEPART = 4242  # tag of the "this rank is exiting" notice on the control communicator
EXIT_GRACE_S = 5.0  # how long a collective may still finish after a peer announced its exit
SLEEP_AFTER_S = 0.05  # a wait longer than this is for a slow peer, not for the transfer: poll with sleeps
YIELD_AFTER_S = 2e-3  # from then on the polling loop offers its core to other runnable work (sched_yield)

_state = None
_FUSED_STEPS = (SGD.step, Adam.step)  # take the average as a grad_scale (AdamW inherits Adam's)
_yield = getattr(os, "sched_yield", lambda: time.sleep(0))  # not on Windows


def under_mpiexec():
    """True when an MPI launcher started this process (its environment says so)."""
    return any(k in os.environ for k in _ENV)


class _Local:
    """One rank, no MPI: every collective is the identity."""
    rank, size, mpi = 0, 1, None


class _World:
    """The communicators and the bookkeeping for failure detection."""

    def __init__(self, comm):
        from mpi4py import MPI
        self.mpi = MPI
        self.comm = comm.Dup()  # our collectives never match a user's messages
        self.ctl = comm.Dup()   # exit notices only
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.departed = {}
        self._notice = np.zeros(1, np.int64)
        self._ctl_req = self.ctl.Irecv(self._notice, source=MPI.ANY_SOURCE, tag=_DEPART)
        self.closed = False
        self._node = None
        self.windows = []  # _SharedWindow's of this job (kept to the end: freeing one is collective)

    def node_size(self):
        """How many ranks of this job share this rank's node (its MPI-3 shared-memory communicator)."""
        if self._node is None:
            self._node = self.comm.Split_type(self.mpi.COMM_TYPE_SHARED, key=self.rank)
        return self._node.Get_size()

    # -- exit notices ---------------------------------------------------------
    def _take_notice(self):
        self.departed.setdefault(int(self._notice[0]), time.monotonic())
        self._ctl_req = self.ctl.Irecv(self._notice, source=self.mpi.ANY_SOURCE, tag=_DEPART)

    def check_peers(self, what):
        if self._ctl_req.Test():
            self._take_notice()
        if self.departed:
            ranks = ", ".join(str(r) for r in sorted(self.departed))
            raise RuntimeError(f"tapegrad.distributed.{what}: rank(s) {ranks} of {self.size} exited; "
                               f"this rank ({self.rank}) cannot complete the collective")

    def wait(self, reqs, what):
        """Wait for ``reqs``; raise instead of hanging when a peer has exited.

        A polling loop, not MPI_Waitany with the notice receive: MPICH's Waitany
        on a pending any-source receive yields the CPU and lost whole
        scheduler slices (~30 ms) per wait on a loaded machine. On shared
        memory the transfer moves only while this loop polls (each poll is one
        step of MPICH's pipeline), so it never sleeps during the first
        ``SLEEP_AFTER_S``: it yields the core (``sched_yield``, free when
        nothing else wants it), then, for a peer that is late by more than
        that, sleeps between polls. (A 20 us sleep from 2 ms on, the
        earlier rule, made a 7.45 MB reduction 1.6x a blocking Allreduce.)
        A peer's exit notice alone is no error: the peer may have finished
        this very collective (a broadcast's receivers can finish before the
        root waits), so the requests get a grace period to complete with
        what it sent."""
        # one request (a step's last bucket, most collectives): its own Test, without Testall's list handling
        self.poll(reqs[0].Test if len(reqs) == 1 else functools.partial(self.mpi.Request.Testall, reqs), what)

    def poll(self, test, what):
        """Call ``test()`` until it returns true, with ``wait()``'s failure checks, yields and sleeps."""
        t0, spins = time.monotonic(), 0
        while not test():
            spins += 1
            if spins & 63:
                continue
            if self._ctl_req.Test():
                self._take_notice()
            # a peer that left may still have completed our requests with what it sent: give it a grace period
            if self.departed and time.monotonic() - min(self.departed.values()) > EXIT_GRACE_S:
                self.check_peers(what)
            waited = time.monotonic() - t0
            if waited > SLEEP_AFTER_S:
                time.sleep(2e-5)
            elif waited > YIELD_AFTER_S:
                _yield()

    def at_exit(self):
        """Tell the peers this rank is leaving, then wait until every rank has said so."""
        if self.closed:
            return
        self.closed = True
        MPI = self.mpi
        me = np.array([self.rank], np.int64)
        sends = [self.ctl.Isend(me, dest=r, tag=_DEPART) for r in range(self.size) if r != self.rank]
        bar = self.ctl.Ibarrier()
        MPI.Request.Waitall(sends + [bar])
        # every peer sent one notice to every rank before the barrier: receive them all
        got = len(self.departed)
        if self._ctl_req.Test():
            got += 1
        else:
            self._ctl_req.Cancel()
            self._ctl_req.Wait()
        buf = np.zeros(1, np.int64)
        for _ in range(self.size - 1 - got):
            self.ctl.Recv(buf, source=MPI.ANY_SOURCE, tag=_DEPART)
        for win in self.windows:  # collective over the node, as the allocations were
            win.win.Unlock_all()
            win.win.Free()
        self.ctl.Free()
        self.comm.Free()


def _excepthook_for(world, previous):
    def hook(tp, value, tb):
        previous(tp, value, tb)
        sys.stderr.write(f"tapegrad.distributed: rank {world.rank} of {world.size} failed ({tp.__name__}); "
                         f"aborting all ranks (MPI_Abort)\n")
        sys.stderr.flush()
        # mpiexec's proxy forwards output asynchronously and MPI_Abort tears the job down at
        # once: under load the traceback was cut after its first line (seen in the suite at
        # load 20). A moment's grace lets it through; the job is ending anyway.
        time.sleep(0.5)
        world.mpi.COMM_WORLD.Abort(1)
    return hook


def init(comm=None):
    """Start data-parallel mode; returns ``(rank, size)``. Idempotent.

    Outside ``mpiexec`` (and without ``comm``) this is a no-op: one rank, no
    MPI import. Under ``mpiexec`` it imports mpi4py (``pip install
    'tapegrad[distributed]'``) and works on ``comm`` (default
    ``MPI.COMM_WORLD``), installing the failure handling described in the
    module docstring."""
    global _state
    if _state is not None:
        return _state.rank, _state.size
    if comm is None and not under_mpiexec():
        _state = _Local()
        return 0, 1
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("tapegrad.distributed.init: running under mpiexec but mpi4py is not installed: "
                          "pip install 'tapegrad[distributed]' (or pip install mpi4py mpich)") from None
    world = _World(MPI.COMM_WORLD if comm is None else comm)
    _state = world
    if world.size > 1:
        sys.excepthook = _excepthook_for(world, sys.excepthook)
    atexit.register(world.at_exit)
    return world.rank, world.size


def is_initialized():
    """Whether init() has run in this process."""
    return _state is not None


def _world(what):
    if _state is None:
        raise RuntimeError(f"tapegrad.distributed.{what}: call tapegrad.distributed.init() first")
    return _state


def rank():
    """This process's rank (0 outside mpiexec)."""
    return _world("rank()").rank


def size():
    """The number of ranks (1 outside mpiexec)."""
    return _world("size()").size


def barrier():
    """Wait until every rank reaches this call (a no-op on one process)."""
    w = _world("barrier()")
    if w.size > 1:
        w.wait([w.comm.Ibarrier()], "barrier()")


# ---------------------------------------------------------------------------
# collectives on values
# ---------------------------------------------------------------------------

def _check_op(op, what):
    if op not in _OPS:
        raise ValueError(f"tapegrad.distributed.{what}: op must be one of {', '.join(map(repr, _OPS))}, got {op!r}")


def _agree(w, signature, what):
    """Raise on every rank unless all ranks passed the same small int64 signature."""
    sig = np.asarray(signature, np.int64)
    both = np.concatenate([sig, -sig])
    w.wait([w.comm.Iallreduce(w.mpi.IN_PLACE, both, op=w.mpi.MIN)], what)
    return bool(np.array_equal(both[:sig.size], -both[sig.size:]))


def _gather_objects(w, obj, what):
    """Every rank's ``obj`` (small, picklable), in rank order."""
    data = np.frombuffer(pickle.dumps(obj), np.uint8)
    counts = np.zeros(w.size, np.int64)
    counts[w.rank] = data.size
    w.wait([w.comm.Iallreduce(w.mpi.IN_PLACE, counts, op=w.mpi.SUM)], what)
    out = np.empty(int(counts.sum()), np.uint8)
    w.wait([w.comm.Iallgatherv(data, [out, counts.tolist()])], what)
    offs = np.concatenate([[0], np.cumsum(counts)])
    return [pickle.loads(out[offs[i]:offs[i + 1]].tobytes()) for i in range(w.size)]


def _signature(arr):
    shape = list(arr.shape) + [-1] * (64 - arr.ndim)
    return [arr.dtype.num, arr.ndim] + shape


def allreduce(value, op="mean"):
    """Reduce ``value`` over all ranks: ``op`` is ``"mean"``, ``"sum"``, ``"max"`` or ``"min"``.

    ``value``: a NumPy array (or anything ``np.asarray`` takes, a Python
    number gives a float/int back) or a Variable outside the graph (under
    ``no_grad`` or not requiring grad; the result is a new Variable that does
    not require grad). This is not a tape op: it has no derivative. Every
    rank must pass the same shape and dtype (checked: a ``ValueError`` names
    them). ``"mean"`` of integers gives float64."""
    _check_op(op, "allreduce")
    w = _world("allreduce()")
    as_variable = isinstance(value, Variable)
    scalar = isinstance(value, numbers.Number) and not isinstance(value, np.ndarray)
    if as_variable:
        if value.requires_grad and is_grad_enabled():
            raise RuntimeError("tapegrad.distributed.allreduce: the Variable requires grad, and allreduce is not a "
                               "tape op (its result would have no gradient); call it under tapegrad.no_grad() or "
                               "on v.detach()")
        arr = np.array(value.data, copy=True)
    else:
        arr = np.array(value, copy=True, order="C")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"tapegrad.distributed.allreduce: expected a numeric array, a number or a Variable, "
                            f"got {type(value).__name__} of dtype {arr.dtype}")
        if arr.dtype.kind == "b":
            arr = arr.astype(np.int64)
    if w.size > 1:
        if not _agree(w, _signature(arr), "allreduce()"):
            sigs = _gather_objects(w, (arr.shape, str(arr.dtype)), "allreduce()")
            listing = "; ".join(f"rank {i}: shape {s} {d}" for i, (s, d) in enumerate(sigs))
            raise ValueError(f"tapegrad.distributed.allreduce: the ranks passed different arrays ({listing})")
        mop = {"mean": w.mpi.SUM, "sum": w.mpi.SUM, "max": w.mpi.MAX, "min": w.mpi.MIN}[op]
        if arr.size:
            w.wait([w.comm.Iallreduce(w.mpi.IN_PLACE, arr, op=mop)], "allreduce()")
    if op == "mean":
        arr = arr / arr.dtype.type(w.size) if arr.dtype.kind == "f" else arr / np.float64(w.size)
    if as_variable:
        return Variable(arr)
    if scalar:
        return arr.item()
    return arr


def _named(params, what):
    """(name, Variable) pairs from a Layer, a dict or an iterable of Variables / pairs."""
    if hasattr(params, "named_parameters"):
        return list(params.named_parameters())
    if isinstance(params, dict):
        items = list(params.items())
    elif isinstance(params, Variable):
        raise TypeError(f"tapegrad.distributed.{what}: expected a model, a dict or a list of Variables, "
                        f"not a single Variable")
    else:
        items = [p if isinstance(p, tuple) else (str(i), p) for i, p in enumerate(params)]
    for name, p in items:
        if not isinstance(p, Variable):
            raise TypeError(f"tapegrad.distributed.{what}: parameter {name!r} is a {type(p).__name__}, "
                            f"not a tapegrad.Variable")
    return items


def _check_root(w, root, what):
    if not isinstance(root, numbers.Integral) or isinstance(root, bool) or not 0 <= root < w.size:
        raise ValueError(f"tapegrad.distributed.{what}: root must be a rank in [0, {w.size}), got {root!r}")
    return int(root)


def _describe_mismatch(mine, theirs, r, root):
    names_a, names_b = [n for n, *_ in theirs], [n for n, *_ in mine]
    if len(mine) != len(theirs):
        return f"rank {r} has {len(mine)} parameters, rank {root} has {len(theirs)}"
    for (n1, s1, d1), (n0, s0, d0) in zip(mine, theirs):
        if (s1, d1) != (s0, d0):
            return (f"parameter {n0!r} has shape {s0} {d0} on rank {root} but parameter {n1!r} has shape {s1} {d1} "
                    f"on rank {r}")
    return f"the parameter names differ: {names_b} on rank {r}, {names_a} on rank {root}"


def broadcast_parameters(model, root=0):
    """Copy ``root``'s parameter values into every rank's parameters (in place).

    ``model``: a ``Layer``, a dict name -> Variable, or a list of Variables.
    Every rank must have the same parameter shapes and dtypes in the same
    order; otherwise every rank raises ``ValueError`` naming the first
    parameter that differs and its shapes, and nothing is written."""
    w = _world("broadcast_parameters()")
    root = _check_root(w, root, "broadcast_parameters()")
    items = _named(model, "broadcast_parameters()")
    if w.size == 1:
        return
    sig = [(n, tuple(p.shape), str(p.dtype)) for n, p in items]
    flat = [len(sig)] + [x for _, s, d in sig for x in _signature(np.empty(s, d))]
    if not _agree(w, [len(flat)], "broadcast_parameters()") or not _agree(w, flat, "broadcast_parameters()"):
        sigs = _gather_objects(w, sig, "broadcast_parameters()")
        bad = [r for r in range(w.size) if [tuple(x[1:]) for x in sigs[r]] != [tuple(x[1:]) for x in sigs[root]]]
        raise ValueError("tapegrad.distributed.broadcast_parameters: the models differ across ranks: "
                         + _describe_mismatch(sigs[bad[0]], sigs[root], bad[0], root))
    reqs = [w.comm.Ibcast(np.asarray(p.data), root=root) for _, p in items if p.size]
    w.wait(reqs, "broadcast_parameters()")


def broadcast_object(obj, root=0):
    """``root``'s ``obj`` on every rank (pickled in memory between the ranks of this job, never to a file)."""
    w = _world("broadcast_object()")
    root = _check_root(w, root, "broadcast_object()")
    if w.size == 1:
        return obj
    data = np.frombuffer(pickle.dumps(obj), np.uint8) if w.rank == root else None
    n = np.array([0 if data is None else data.size], np.int64)
    w.wait([w.comm.Ibcast(n, root=root)], "broadcast_object()")
    buf = np.array(data) if w.rank == root else np.empty(int(n[0]), np.uint8)
    w.wait([w.comm.Ibcast(buf, root=root)], "broadcast_object()")
    return obj if w.rank == root else pickle.loads(buf.tobytes())


def broadcast_optimizer_state(optimizer, root=0):
    """Load ``root``'s optimizer state (``state_dict()``) into every rank's optimizer."""
    state = broadcast_object(optimizer.state_dict(), root)
    if _world("broadcast_optimizer_state()").rank != root:
        optimizer.load_state_dict(state)


def check_consistent(model, what="check_consistent()"):
    """Raise ``RuntimeError`` unless every rank's parameters are bitwise identical (names the first that differs)."""
    w = _world(what)
    items = _named(model, what)
    if w.size == 1:
        return
    digests = [hashlib.blake2b(np.ascontiguousarray(p.data).tobytes(), digest_size=8).digest() for _, p in items]
    allsigs = _gather_objects(w, digests, what)
    for i, (name, p) in enumerate(items):
        differing = [r for r in range(w.size) if allsigs[r][i] != allsigs[0][i]]
        if differing:
            raise RuntimeError(f"tapegrad.distributed.{what}: parameter {name!r} (shape {p.shape}) differs between "
                               f"rank 0 and rank(s) {differing}")


# ---------------------------------------------------------------------------
# gradient reduction in buckets
# ---------------------------------------------------------------------------

class _SharedWindow:
    """An MPI-3 shared-memory window over the ranks of one node: each rank's segment holds its buckets
    (its ``.grad`` views live there) and two flags per bucket, and every rank can read and write every
    segment. ``_Reducer`` sums bucket ``k`` with it as MPICH cannot on shared memory: rank ``r`` alone
    adds chunk ``r`` of the bucket over all the segments, in rank order (the same bits on every rank,
    run to run), and writes the sum into every segment; no message, no copy into MPICH's cells, and each
    rank adds ``1/N`` of the bytes. Free windows of an earlier reducer are reused (every rank must agree:
    allocating is collective)."""

    ALIGN = 64  # bytes: buckets and chunks start on their own cache lines (ranks write neighbouring chunks)

    def __init__(self, world, nbytes, nslots):
        MPI = world.mpi
        self.nbytes, self.nslots, self.used = nbytes, nslots, True
        self.head = -(-2 * nslots * 8 // self.ALIGN) * self.ALIGN
        self.win = MPI.Win.Allocate_shared(self.head + nbytes, 1, comm=world._node)
        segs = [np.frombuffer(self.win.Shared_query(q)[0], np.uint8) for q in range(world.size)]
        self.segs = [seg[self.head:self.head + nbytes] for seg in segs]
        # flags[q][0, k]: the step rank q published bucket k in; flags[q][1, k]: the step it summed its chunk
        self.flags = [seg[:2 * nslots * 8].view(np.int64).reshape(2, nslots) for seg in segs]
        self.win.Lock_all(MPI.MODE_NOCHECK)  # passive target for the whole life: Sync() orders the accesses

    def claim(self, world):
        """Zero this rank's flags (a reused window holds an earlier reducer's steps) before any rank reads them."""
        self.used = True
        self.flags[world.rank][...] = 0
        self.win.Sync()
        world.wait([world._node.Ibarrier()], "DistributedOptimizer()")
        return self

    @staticmethod
    def get(world, nbytes, nslots):
        """A window of at least ``nbytes`` and ``nslots`` for a new reducer: a free one if every rank has
        the same free one, else a new one."""
        free = [k for k, win in enumerate(world.windows)
                if not win.used and win.nbytes >= nbytes and win.nslots >= nslots]
        pick = free[0] if free else -1
        if _agree(world, [pick], "DistributedOptimizer()") and pick >= 0:
            return world.windows[pick].claim(world)
        world.windows.append(_SharedWindow(world, nbytes, nslots))
        return world.windows[-1].claim(world)

    def release(self):
        self.used = False


class _Bucket:
    __slots__ = ("index", "params", "offsets", "buffer", "target", "ready", "request", "t_ready", "t_start", "t_end",
                 "tail", "seg", "peers", "chunks", "src", "stage")

    def __init__(self, index, params):
        self.index, self.params = index, params  # params: parameter indices, in order
        self.offsets, self.buffer = None, None
        self.tail = 0  # slots after the gradients for the presence counts (the last bucket only)
        self.target = None  # the memory the last reduction ran in: the buffer, or a lone gradient's own array
        self.ready, self.request = 0, None
        self.t_ready = self.t_start = self.t_end = None
        # shared memory: byte offset in the segments, every rank's copy, the chunks' element ranges,
        # a lone member's own array (its chunk is read from there), the stage (1: published, 2: chunk summed)
        self.seg, self.peers, self.chunks, self.src, self.stage = 0, None, None, None, 0


class _Reducer:
    """Averages the gradients of ``params`` over the ranks of ``world``, bucket by bucket.

    A bucket of several parameters is one flat buffer that the reducer owns,
    and each member's ``.grad`` is made a view of its slice (PyTorch DDP's
    ``gradient_as_bucket_view``); a parameter alone in its bucket is reduced
    in its own ``.grad`` array, which is then its bucket. Either way the
    reduction runs in place and the averages are in ``.grad`` when it ends,
    with nothing to copy back. With a shared-memory window (every rank on
    one node) every bucket is a buffer in this rank's segment: a lone
    gradient in an array of its own is read from there for this rank's
    chunk, the peers' chunks are copied into the segment, and ``.grad``
    becomes the view once the sum is in it."""

    def __init__(self, world, params, bucket_size, passes, progress_interval=None, hooked=False, shared=None):
        self.w, self.params, self.passes = world, params, passes
        multiple = world.mpi.Query_thread() >= world.mpi.THREAD_MULTIPLE
        self.interval = progress_interval if multiple else None
        self._lock, self._thread, self._stop = threading.Lock(), None, False
        self.bucket_size = bucket_size
        # 1/N, as the fused update converts it (a double to the gradient's dtype): both ways give the same bits
        self.inv = 1.0 / world.size
        self.scale = [p.dtype.type(self.inv) for p in params]
        self.names = [f"{i} (shape {tuple(p.shape)}, {p.dtype})" for i, p in enumerate(params)]
        self.hooked, self.rebuilt, self.observed = hooked, False, []
        self._times = None
        self.epoch = 0  # steps so far: what the shared window's flags of this step say
        self.shm = None
        if shared is not False and world.node_size() == world.size:  # every rank on this node
            A = _SharedWindow.ALIGN
            nbytes = sum(-(-(p.size * p.dtype.itemsize + A) // A) * A for p in params) + len(params) * 16 + A
            self.shm = _SharedWindow.get(world, nbytes, max(len(params), 1))
            weakref.finalize(self, self.shm.release)
        elif shared:
            raise ValueError("DistributedOptimizer: shared_memory=True needs every rank on one node "
                             f"({world.node_size()} of {world.size} ranks share this one)")
        self._build(list(range(len(params)))[::-1])  # the last layer's gradients are final first

    def _build(self, order):
        """Buckets over the parameters taken in ``order``: consecutive ones of one dtype up to
        ``bucket_size`` bytes; a parameter of at least a quarter of that alone (its reduction can start
        as soon as it is final, without waiting for smaller neighbours), unless every gradient fits in
        one bucket: then one bucket, one call (a small model's reduction is latency-bound: a second
        call cost mlp_mnist more than the overlap of its 5 KB could give). Each bucket gets a flat
        buffer and each parameter a view of its slice (``self.views``)."""
        params, cap = self.params, self.bucket_size
        dtypes = {params[i].dtype for i in order}
        total = sum(params[i].size * params[i].dtype.itemsize for i in order)
        alone = max(cap // 4, 1) if total > cap or len(dtypes) > 1 else cap + 1
        self.buckets, self.where = [], {}
        cur, cur_bytes = [], 0
        for i in order:
            p = params[i]
            nbytes = p.size * p.dtype.itemsize
            if cur and (cur_bytes + nbytes > cap or params[cur[0]].dtype != p.dtype or nbytes >= alone):
                self._close(cur)
                cur, cur_bytes = [], 0
            cur.append(i)
            cur_bytes += nbytes
            if nbytes >= alone:
                self._close(cur)
                cur, cur_bytes = [], 0
        if cur:
            self._close(cur)
        if not self.hooked and len(self.buckets) > 1:
            # every bucket starts in synchronize(), so their order is free: the smallest goes last, where
            # it carries the presence counts without a large lone gradient being copied into a buffer
            small = min(self.buckets, key=lambda b: sum(params[i].size * params[i].dtype.itemsize
                                                         for i in b.params))
            self.buckets.remove(small)
            self.buckets.append(small)
            for k, b in enumerate(self.buckets):
                b.index = k
        self.views = [None] * len(params)
        self.addr = [None] * len(params)  # each view's address (_core._grad_address of .grad equals it: in the view)
        self.present = np.zeros(0, np.int8)
        if self.buckets:
            # which parameters had a gradient on how many ranks, summed in the last bucket's own reduction
            # (slots after its gradients, in its dtype: small integers are exact) rather than in a call of
            # their own: every parameter's presence is known when the last bucket starts
            self.buckets[-1].tail = len(params)
        seg = 0
        for b in self.buckets:  # where each bucket lives in the shared window's segments
            b.seg = seg
            seg += -(-(sum(params[i].size for i in b.params) + b.tail) * params[b.params[0]].dtype.itemsize
                     // _SharedWindow.ALIGN) * _SharedWindow.ALIGN
        for b in self.buckets:
            # a lone parameter's buffer is made only if its .grad cannot serve (always in shared memory)
            if len(b.params) > 1 or b.tail or self.shm is not None:
                self._own(b)
        self.reset()

    def _own(self, b):
        """Give bucket ``b`` its flat buffer and its members their views of it."""
        params = self.params
        sizes = [params[i].size for i in b.params]
        b.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64).tolist()
        dtype, count = params[b.params[0]].dtype, b.offsets[-1] + b.tail
        if self.shm is None:
            b.buffer = b.target = np.zeros(count, dtype)
        else:
            nb = count * dtype.itemsize
            b.peers = [seg[b.seg:b.seg + nb].view(dtype) for seg in self.shm.segs]
            b.buffer = b.target = b.peers[self.w.rank]
            b.buffer[...] = 0
            # rank q sums elements chunks[q]:chunks[q + 1], whole cache lines
            line = max(_SharedWindow.ALIGN // dtype.itemsize, 1)
            per = -(-count // self.w.size // line) * line if count else 0
            b.chunks = [min(q * per, count) for q in range(self.w.size + 1)]
        for pos, i in enumerate(b.params):
            self.views[i] = b.buffer[b.offsets[pos]:b.offsets[pos + 1]].reshape(params[i].shape)
            self.addr[i] = self.views[i].ctypes.data if params[i].size else None
        if b.tail:
            self.present = b.buffer[b.offsets[-1]:]

    def _close(self, members):
        b = _Bucket(len(self.buckets), list(members))
        for pos, i in enumerate(members):
            self.where[i] = (b, pos)
        self.buckets.append(b)

    def layout(self):
        return [[(i, tuple(self.params[i].shape), str(self.params[i].dtype)) for i in b.params] for b in self.buckets]

    def reset(self):
        self.counts = [0] * len(self.params)
        self.next = 0
        self.inflight = []
        self.absent = []
        self.t_sync = self.t_done = None
        self.present[:] = 0
        self.epoch += 1
        for b in self.buckets:
            b.ready, b.request, b.src, b.stage = 0, None, None, 0
            b.t_ready = b.t_start = b.t_end = None

    @property
    def pending(self):
        return self.next > 0 or any(self.counts)

    def _link(self, i):
        _core._set_grad_view(self.params[i], self.views[i], self.names[i])

    def _take(self, i, b, pos):
        """Parameter ``i``'s final gradient into its bucket (the reduction sums; the 1/N comes after it,
        folded into the optimizer's update or in ``average()``). In a bucket of several, ``.grad`` is the
        member's view: nothing to do when it already was (``zero_grad(set_to_none=False)``: the backward
        added into it), else (a new array after ``zero_grad()``, or an assignment) it is copied into the
        bucket and ``.grad`` is pointed at the view. Alone, the gradient's own array is the bucket: the
        backward's new array is reduced where the engine wrote it, with no copy in either mode."""
        p = self.params[i]
        # the address alone answers "is .grad this member's view?" (reading .grad builds an ndarray, 1.6 us)
        addr = _core._grad_address(p)
        if addr == self.addr[i]:  # the backward added into the view (zero_grad(set_to_none=False))
            self.present[i] = 1
            b.target = b.buffer
        elif addr == 0:
            if b.buffer is None:
                self._own(b)
            self.views[i].fill(0)  # counts as zero in the peers' sum; .grad set after the reduction
            self.absent.append(i)
            b.target = b.buffer
        elif addr == -1:
            raise RuntimeError("DistributedOptimizer: gradients recorded with create_graph=True cannot be reduced "
                               "across ranks")
        else:  # an array of its own: the backward's new one after zero_grad(), or an assignment's copy
            self.present[i] = 1
            g = p.grad
            if len(b.params) == 1 and not b.tail and g.flags.c_contiguous and g.flags.writeable:
                if self.shm is None:
                    b.target = g
                else:  # the peers read their chunks from this rank's segment, this rank its own from g
                    b.src = g.reshape(-1)
                    for q in range(self.w.size):
                        if q != self.w.rank:
                            lo, hi = b.chunks[q], b.chunks[q + 1]
                            b.buffer[lo:hi] = b.src[lo:hi]
            else:
                if b.buffer is None:
                    self._own(b)
                np.copyto(self.views[i], g)
                self._link(i)
                b.target = b.buffer
        b.ready += 1
        if b.ready == len(b.params):
            b.t_ready = time.perf_counter()

    def grad_ready(self, i):
        """Parameter ``i``'s gradient is final for this step: pack it and start every bucket that can start."""
        self.counts[i] += 1
        if self.counts[i] > self.passes:
            raise RuntimeError(f"DistributedOptimizer: parameter {i} (shape {self.params[i].shape}) got a gradient "
                               f"from {self.counts[i]} backward passes before step(), but "
                               f"backward_passes_per_step={self.passes}")
        if self.counts[i] != self.passes:
            return
        if not self.rebuilt:
            self.observed.append(i)
        b, pos = self.where[i]
        with self._lock:
            self._take(i, b, pos)
            self._launch()
            self._poke()
        if self.inflight and self.interval is not None and self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._progress, name="tapegrad-mpi-progress", daemon=True)
            self._thread.start()

    def _progress(self):
        """Test the in-flight buckets every ``interval`` s while the sweep computes (it releases the GIL)."""
        while not self._stop:
            time.sleep(self.interval)
            with self._lock:
                if self._stop:
                    break
                self._poke()

    def _launch(self):
        while self.next < len(self.buckets) and self.buckets[self.next].t_ready is not None:
            b = self.buckets[self.next]
            b.t_start = time.perf_counter()
            if b.target.size:
                (self._start_mpi if self.shm is None else self._start_shared)(b)  # no bound method kept: no cycle
                self.inflight.append(b)
            else:
                b.t_end = b.t_start
            self.next += 1

    def _start_mpi(self, b):
        MPI = self.w.mpi
        b.request = self.w.comm.Iallreduce(MPI.IN_PLACE, b.target, op=MPI.SUM)

    def _start_shared(self, b):
        """Publish bucket ``b`` in this rank's segment: the peers may read it and add into it from now on."""
        self.shm.win.Sync()  # the bucket's bytes before the flag, for any rank that sees the flag
        self.shm.flags[self.w.rank][0, b.index] = self.epoch
        b.stage = 1

    def _poke(self):
        """Drive MPI's progress (it moves only inside MPI calls) and note which buckets finished. One
        Test of the oldest bucket runs the progress engine for all of them; later ones are tested only
        once it is done (each Test is a full progress poll, and the buckets finish in order anyway).
        In shared memory: sum this rank's chunk of every bucket that all ranks have published."""
        inflight = self.inflight
        if self.shm is not None:
            self._poke_shared()
            return
        while inflight and inflight[0].request.Test():
            inflight.pop(0).t_end = time.perf_counter()

    def _poke_shared(self):
        shm, e, r, k = self.shm, self.epoch, self.w.rank, 0
        shm.win.Sync()  # see the peers' flags, and the bytes written before them
        flags = shm.flags
        while k < len(self.inflight):
            b = self.inflight[k]
            if b.stage == 1 and all(f[0, b.index] >= e for f in flags):
                lo, hi = b.chunks[r], b.chunks[r + 1]
                if hi > lo:
                    # chunk r in rank order, accumulated where rank 0's term is (rank r alone touches chunk r
                    # anywhere while the bucket is in flight), then the sum into every other segment
                    terms = [b.src[lo:hi] if q == r and b.src is not None else peer[lo:hi]
                             for q, peer in enumerate(b.peers)]
                    out = b.peers[0][lo:hi]
                    np.add(terms[0], terms[1], out=out)
                    for t in terms[2:]:
                        np.add(out, t, out=out)
                    for peer in b.peers[1:]:
                        peer[lo:hi] = out
                shm.win.Sync()
                flags[r][1, b.index] = e
                b.stage = 2
                shm.win.Sync()
            if b.stage == 2 and all(f[1, b.index] >= e for f in flags):
                b.t_end = time.perf_counter()
                if b.src is not None:  # a lone gradient's sum is in its view now: .grad becomes the view
                    self._link(b.params[0])
                    b.src = None
                del self.inflight[k]
            else:
                k += 1

    def synchronize(self):
        """Start what the hooks did not, wait for every bucket: the sums over the ranks are then in
        ``.grad`` (``average()``, or the update's ``grad_scale``, makes them the averages)."""
        self.t_sync = time.perf_counter()
        if self._thread is not None:
            with self._lock:
                self._stop = True
            self._thread.join()
            self._thread = None
        for b in self.buckets[self.next:]:  # each bucket starts as soon as it is packed
            for pos, i in enumerate(b.params):
                if self.counts[i] < self.passes:
                    self.counts[i] = self.passes
                    self._take(i, b, pos)
            self._launch()
        if self.shm is None:
            self.w.wait([b.request for b in self.inflight], "DistributedOptimizer.synchronize()")
        else:
            self.w.poll(self._drained, "DistributedOptimizer.synchronize()")
        now = time.perf_counter()
        for b in self.inflight:
            b.t_end = now
        # the presence counts came with the last bucket: a parameter with no gradient anywhere keeps .grad None
        for i in self.absent:  # no gradient here: the others' average, or None if no rank had one
            if self.present[i]:
                self._link(i)
        self.t_done = time.perf_counter()
        # the raw times only: the dicts are built when someone reads the timeline (~10 us a step otherwise)
        self._times = (self.t_sync, self.t_done, [(b.index, b.params, b.t_ready, b.t_start, b.t_end)
                                                  for b in self.buckets])
        if self.hooked and not self.rebuilt:
            self._rebuild()
        self.reset()

    def _drained(self):
        self._poke_shared()
        return not self.inflight

    def average(self):
        """The sums in ``.grad`` times 1/N, in place: what the fused updates do in their own pass with
        ``grad_scale`` (the same bits), for a caller that reads ``.grad`` before the update, or an
        optimizer without a fused step."""
        for p, s in zip(self.params, self.scale):
            g = p.grad
            if g is not None:
                np.multiply(g, s, out=g)

    def _rebuild(self):
        """After the first step, order the buckets as the hooks fired (PyTorch DDP's rebuild): a layer's
        weight and bias may be final in either order, and a bucket waits for every one before it.
        Rank 0's order is every rank's, so the layouts stay equal."""
        seen = set(self.observed)
        order = np.array(self.observed + [i for i in reversed(range(len(self.params))) if i not in seen], np.int64)
        self.w.wait([self.w.comm.Ibcast(order, root=0)], "DistributedOptimizer.synchronize()")
        grads = [p.grad for p in self.params]  # the averages, in the old buckets
        if self.shm is not None:  # the new buckets reuse the segment: keep the averages apart first
            grads = [None if g is None else np.array(g) for g in grads]
        self._build(order.tolist())
        for i, g in enumerate(grads):
            b = self.where[i][0]
            if g is None:
                continue
            if b.buffer is not None:
                self.views[i][...] = g
                self._link(i)
            else:
                b.target = g
        self.rebuilt, self.observed = True, []

    @property
    def timeline(self):
        """The last synchronize()'s per-bucket times (None before the first), seconds from its start."""
        if self._times is None:
            return None
        t0, t_done, buckets = self._times
        rows = []
        for index, members, ready, start, end in buckets:
            nbytes = sum(self.params[i].size * self.params[i].dtype.itemsize for i in members)
            rows.append({"bucket": index, "params": list(members), "bytes": int(nbytes),
                         "ready": ready - t0, "start": start - t0, "end": end - t0})
        return {"buckets": rows, "synchronize_start": 0.0, "synchronize_end": t_done - t0}


def _grad_ready(reducer_ref, i, _param):
    reducer = reducer_ref()
    if reducer is not None:
        reducer.grad_ready(i)


def _remove_all(handles):
    for h in handles:
        h.remove()


class DistributedOptimizer(Optimizer):
    """Wraps a ``tapegrad.optim`` optimizer: ``step()`` first averages the gradients over all ranks.

    Horovod's shape: ``zero_grad``, ``state_dict``, ``load_state_dict``,
    ``lr`` and every other attribute are the wrapped optimizer's (so a
    scheduler built on either drives the same learning rate).

    ``bucket_size``: bytes per fused reduction (default 1 MiB; a gradient of
    at least a quarter of it is reduced alone, in place, unless all of them
    fit in one bucket). ``overlap``: start each
    bucket's reduction from the post-accumulate-grad hooks while the backward
    sweep runs (needs the core's ``register_post_accumulate_grad_hook``;
    without it the buckets start in ``step()``). ``backward_passes_per_step``:
    gradients accumulated over that many ``backward()`` calls per step.
    ``progress_interval``: seconds between a helper thread's tests of the
    in-flight buckets during the backward (MPI moves a non-blocking
    collective only inside MPI calls); None (default) tests them only from
    the hooks. Worth it where a core is idle during the backward.
    ``shared_memory``: sum the buckets through an MPI-3 shared-memory window
    (each rank adds its 1/N of every bucket straight from the others'
    memory, in rank order) instead of ``Iallreduce``; None (default) does
    when every rank is on one node, True requires it, False never.
    ``synchronize()`` waits for the averages without stepping (e.g. before
    ``clip_grad_norm``); ``step()`` then does not reduce again.

    In a bucket of several parameters, each one's ``.grad`` is a view of its
    slice of the bucket's buffer once its gradient has been reduced (and
    stays one: ``zero_grad(set_to_none=False)`` zeroes it in place and the
    next backward adds into it); after ``zero_grad()`` (``set_to_none=True``,
    the default) or an assignment to ``.grad``, the next reduction copies the
    new gradient into the bucket and points ``.grad`` at the view again. A
    parameter alone in its bucket is reduced in place in its ``.grad`` array,
    whatever it is (no copy), except in the last bucket, which also carries
    how many ranks had each gradient and so has a buffer (with shared memory
    every parameter's ``.grad`` ends as a view of its bucket, in the window).
    After ``synchronize()`` or ``step()``, ``.grad`` holds the average over the ranks.
    ``timeline`` holds the last step's per-bucket times (seconds from the
    start of ``synchronize``: negative = before it, during the backward)."""

    _own = ("optimizer", "_reducer", "_hooks", "_world", "_synced", "overlap")

    def __init__(self, optimizer, *, bucket_size=1 << 20, overlap=True, backward_passes_per_step=1,
                 progress_interval=None, shared_memory=None):
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: the optimizer is already a DistributedOptimizer")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"DistributedOptimizer: expected a tapegrad.optim optimizer, got {type(optimizer).__name__}")
        for name, v in (("bucket_size", bucket_size), ("backward_passes_per_step", backward_passes_per_step)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"DistributedOptimizer: {name} must be a positive integer, got {v!r}")
        w = _world("DistributedOptimizer()")
        set_ = object.__setattr__
        set_(self, "optimizer", optimizer)
        set_(self, "_world", w)
        set_(self, "_synced", False)
        set_(self, "_hooks", [])
        set_(self, "_reducer", None)
        set_(self, "overlap", False)
        if w.size == 1:
            return
        if progress_interval is not None and not (isinstance(progress_interval, numbers.Real)
                                                  and 0 < progress_interval < 1):
            raise ValueError(f"DistributedOptimizer: progress_interval must be None or seconds in (0, 1), "
                             f"got {progress_interval!r}")
        register = getattr(Variable, "register_post_accumulate_grad_hook", None)
        hooked = bool(overlap) and register is not None
        if shared_memory not in (None, True, False):
            raise ValueError(f"DistributedOptimizer: shared_memory must be None, True or False, got {shared_memory!r}")
        reducer = _Reducer(w, optimizer.params, int(bucket_size), int(backward_passes_per_step), progress_interval,
                           hooked, shared_memory)
        set_(self, "_reducer", reducer)
        layout = reducer.layout()
        flat = [len(layout)] + [x for b in layout for (i, s, d) in b for x in [i] + _signature(np.empty(s, d))]
        if not _agree(w, [len(flat)], "DistributedOptimizer()") or not _agree(w, flat, "DistributedOptimizer()"):
            sigs = _gather_objects(w, [(str(i), s, d) for b in layout for (i, s, d) in b], "DistributedOptimizer()")
            bad = next(r for r in range(w.size) if sigs[r] != sigs[0])
            raise ValueError("DistributedOptimizer: the parameters differ across ranks: "
                             + _describe_mismatch(sigs[bad], sigs[0], bad, 0))
        if hooked:
            # the hooks hold the reducer weakly: a dropped optimizer stops reducing, it does not leak collectives
            ref = weakref.ref(reducer)
            for i, p in enumerate(optimizer.params):
                self._hooks.append(p.register_post_accumulate_grad_hook(functools.partial(_grad_ready, ref, i)))
            weakref.finalize(self, _remove_all, list(self._hooks))
            set_(self, "overlap", True)

    # -- delegation -------------------------------------------------------------
    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "optimizer"), name)

    def __setattr__(self, name, value):
        if name in self._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self.optimizer, name, value)

    def zero_grad(self, *args, **kwargs):
        if self._reducer is not None and self._reducer.pending:
            raise RuntimeError("DistributedOptimizer.zero_grad() was called after backward() but before step() or "
                               "synchronize(): the gradients' reduction is under way; call step() first")
        object.__setattr__(self, "_synced", False)
        self.optimizer.zero_grad(*args, **kwargs)

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict):
        return self.optimizer.load_state_dict(state_dict)

    def synchronize(self):
        """Average the gradients over all ranks now: ``.grad`` then holds the averages (e.g. for
        ``clip_grad_norm``); ``step()`` then updates without reducing again."""
        if self._reducer is not None:
            self._reducer.synchronize()
            self._reducer.average()
        object.__setattr__(self, "_synced", True)

    def step(self):
        """Average the gradients (unless ``synchronize()`` did), then the wrapped optimizer's update. With
        SGD, Adam or AdamW the 1/N is folded into the fused update (``grad_scale``: each ``.grad`` is
        scaled in the update's own pass and written back), so averaging costs no pass of its own."""
        reducer, synced = self._reducer, self._synced
        object.__setattr__(self, "_synced", False)
        if reducer is None or synced:
            return self.optimizer.step()
        reducer.synchronize()
        if type(self.optimizer).step in _FUSED_STEPS:  # a subclass's own step() may read .grad first
            return self.optimizer._fused_step(reducer.inv)
        reducer.average()
        return self.optimizer.step()

    def remove_hooks(self):
        """Detach from the parameters (the hooks stop feeding this optimizer)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        object.__setattr__(self, "overlap", False)

    @property
    def timeline(self):
        """The last step's per-bucket times (see the class docstring); None before it or on one rank."""
        return None if self._reducer is None else self._reducer.timeline

    @property
    def buckets(self):
        """The bucket layout: a list of lists of parameter indices, in reduction order."""
        return [] if self._reducer is None else [list(b.params) for b in self._reducer.buckets]

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r}, ranks={self._world.size}, overlap={self.overlap})"
