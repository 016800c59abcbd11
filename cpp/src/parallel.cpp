#include "tapegrad/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tg {

namespace {

thread_local bool t_in_parallel = false;

// Workers sleep on a condition variable between jobs. A job lives on the
// calling thread's stack; workers pick it up under the lock (counting
// themselves in `users`), claim ranges with its atomic counter, and run()
// returns only when every range is done and no worker still holds the job.
//
// Waking a sleeping worker costs a futex wake and, on an idle (or virtual)
// CPU, tens of microseconds before it runs, and the caller that finished its
// range first sleeps and is woken the same way: at 1M elements that was what
// the 2-thread rows lost to PyTorch, whose OpenMP workers spin between ops.
// So a worker spins for a short while after a job before it sleeps (back-to-
// back ops find it awake), and the caller spins briefly for the workers'
// ranges before it sleeps. The ranges stay one per thread, the caller's
// always the first: consecutive ops then touch the same half of an array on
// the same core (its L2); ranges claimed in any order made exp's recorded
// forward + backward slower (benchmarks/README.md, h72-bigops).
struct Job {
  const RangeFn* f;
  int64_t n, chunks;
  std::atomic<int64_t> next{1};  // range 0 is the caller's
  // Written under the pool's mutex; read without it only to end a spin.
  std::atomic<int64_t> done{0}, users{0};
  std::exception_ptr error;  // the first exception a range threw (guarded by the mutex)
};

constexpr auto kCallerSpin = std::chrono::microseconds(50);
constexpr auto kWorkerSpin = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Polls ready() until it holds (true) or `limit` passes (false).
template <class Ready>
bool spin_until(Ready ready, std::chrono::microseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= end) return ready();
  }
}

// Marks the current thread as inside a parallel region (nested calls run inline).
struct InParallel {
  InParallel() { t_in_parallel = true; }
  ~InParallel() { t_in_parallel = false; }
};

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void resize(int threads) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    stop_workers();
    const int n = std::max(1, threads);
    stop_ = false;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { work(); });
    threads_ = n;
  }

  void run(int64_t n, int64_t chunks, const RangeFn& f) {
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one job at a time
    Job job;
    job.f = &f;
    job.n = n;
    job.chunks = chunks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();  // (no system call when every worker is spinning)
    claim(job);
    spin_until([&] { return job.done.load(std::memory_order_acquire) == job.chunks &&
                            job.users.load(std::memory_order_acquire) == 0; },
               kCallerSpin);
    std::unique_lock<std::mutex> lock(mu_);  // (also: a worker's last touch of the job is over)
    job_ = nullptr;  // late workers find nothing to do
    done_cv_.wait(lock, [&] { return job.done.load(std::memory_order_relaxed) == job.chunks &&
                                     job.users.load(std::memory_order_relaxed) == 0; });
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  // Runs ranges until none is left. An exception (only std::bad_alloc is
  // possible in today's kernels) is kept for run() to rethrow on the calling
  // thread, after every range is accounted for: the Job stays valid until then.
  // Returns the number of ranges run, which the thread then adds to `done`
  // under the mutex. Range 0 is run()'s caller's (`first`), so that it works
  // on the same part of the arrays in consecutive ops; workers take the rest.
  int64_t claim(Job& job, std::exception_ptr& error, bool first) {
    int64_t finished = 0;
    InParallel guard;
    for (int64_t c = first ? 0 : job.next.fetch_add(1); c < job.chunks; c = job.next.fetch_add(1)) {
      try {
        (*job.f)(job.n * c / job.chunks, job.n * (c + 1) / job.chunks);
      } catch (...) {
        if (!error) error = std::current_exception();
      }
      ++finished;
    }
    return finished;
  }

  void claim(Job& job) {
    std::exception_ptr error;
    const int64_t finished = claim(job, error, true);
    std::lock_guard<std::mutex> lock(mu_);
    if (error && !job.error) job.error = error;
    job.done.fetch_add(finished, std::memory_order_release);
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, kWorkerSpin);
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
        if (!job) continue;
        job->users.fetch_add(1, std::memory_order_relaxed);
      }
      std::exception_ptr error;
      const int64_t finished = claim(*job, error, false);
      // The last touch of the job, under the mutex: run() takes it before
      // its stack frame (the job) goes away.
      std::lock_guard<std::mutex> lock(mu_);
      if (error && !job->error) job->error = error;
      job->done.fetch_add(finished, std::memory_order_release);
      if (job->users.fetch_sub(1, std::memory_order_release) == 1 && job->done.load(std::memory_order_relaxed) == job->chunks)
        done_cv_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};  // changed under mu_; a spinning worker reads it without
  bool stop_ = false;
  std::atomic<int> threads_{1};  // read without the lock by parallel_for
};

int default_threads() {
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Never destroyed: joining threads during interpreter shutdown can deadlock.
// A forked child has none of the parent's workers: it builds a new pool.
Pool* g_pool = nullptr;
std::atomic<bool> g_forked{false};
std::once_flag g_atfork_once;

Pool& pool() {
  static Pool* p = [] {
    std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, [] { g_forked = true; }); });
    return g_pool = new Pool(default_threads());
  }();
  if (g_forked.exchange(false)) p = g_pool = new Pool(p->threads());  // the old one is unusable: leaked
  return *p;
}

}  // namespace

void parallel_for_impl(int64_t n, int64_t grain, RangeFn f) {
  if (n <= 0) return;
  int threads = pool().threads();
  if (threads <= 1 || t_in_parallel || n < 2 * grain) {
    f(0, n);
    return;
  }
  int64_t chunks = std::min<int64_t>(threads, n / grain);
  pool().run(n, chunks, f);
}

void set_num_threads(int n) { pool().resize(n); }
int get_num_threads() { return pool().threads(); }

}  // namespace tg
