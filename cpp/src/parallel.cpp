#include "tapegrad/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

namespace tg {

namespace {

thread_local bool t_in_parallel = false;

// Workers sleep on a condition variable between jobs. A job lives on the
// calling thread's stack; workers pick it up under the lock (counting
// themselves in `users`), claim ranges with its atomic counter, and run()
// returns only when every range is done and no worker still holds the job.
struct Job {
  const RangeFn* f;
  int64_t n, chunks;
  std::atomic<int64_t> next{0};
  int64_t done = 0, users = 0;  // guarded by the pool's mutex
  std::exception_ptr error;     // the first exception a range threw (guarded too)
};

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
      ++generation_;
    }
    cv_.notify_all();
    claim(job);
    std::unique_lock<std::mutex> lock(mu_);
    job_ = nullptr;  // late workers find nothing to do
    done_cv_.wait(lock, [&] { return job.done == job.chunks && job.users == 0; });
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  // Runs ranges until none is left. An exception (only std::bad_alloc is
  // possible in today's kernels) is kept for run() to rethrow on the calling
  // thread, after every range is accounted for: the Job stays valid until then.
  void claim(Job& job) {
    int64_t finished = 0;
    std::exception_ptr error;
    {
      InParallel guard;
      for (int64_t c; (c = job.next.fetch_add(1)) < job.chunks;) {
        try {
          (*job.f)(job.n * c / job.chunks, job.n * (c + 1) / job.chunks);
        } catch (...) {
          if (!error) error = std::current_exception();
        }
        ++finished;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (error && !job.error) job.error = error;
    job.done += finished;
    if (job.done == job.chunks) done_cv_.notify_all();
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
        if (!job) continue;
        ++job->users;
      }
      claim(*job);
      std::lock_guard<std::mutex> lock(mu_);
      if (--job->users == 0) done_cv_.notify_all();
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
  uint64_t generation_ = 0;
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
