// chainrule's compiled word2vec kernel: skip-gram and CBOW with negative sampling
// (Mikolov et al. 2013), trained by plain SGD on shared matrices from several threads at once
// (lock-free, "Hogwild"). Python prepares everything else (vocabulary, subsampling
// probabilities, the noise distribution); see chainrule/embeddings/word2vec.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

namespace py = pybind11;

namespace {

constexpr int kExpTable = 1000;
constexpr float kMaxExp = 6.0f;

struct Job {
  float* syn0;
  float* syn1;
  const int32_t* corpus;
  const int64_t* starts;  // sentence offsets, n_sent + 1 of them
  const float* keep;      // per word: probability of keeping an occurrence (subsampling)
  const uint32_t* cum;    // cumulative noise counts (unigram^0.75), cum[V-1] = total
  int64_t vocab, dim, window, negative, epochs;
  bool sg, cbow_mean;
  float alpha, min_alpha;
  int64_t total_words;  // occurrences in one epoch (before subsampling)
  std::atomic<int64_t>* done;
  std::vector<float> exp_table;
};

inline uint64_t next_random(uint64_t& r) {
  r = r * 25214903917ULL + 11ULL;
  return r;
}

inline float sigmoid_of(const Job& job, float f) {
  int i = static_cast<int>((f + kMaxExp) * (kExpTable / kMaxExp / 2));
  return job.exp_table[i];
}

// one positive (label 1) or negative (label 0) update of output row `t` against input `h`
inline void update(const Job& job, const float* h, int64_t t, float label, float alpha,
                   float* err) {
  float* out = job.syn1 + t * job.dim;
  float f = 0.0f;
  for (int64_t d = 0; d < job.dim; ++d) f += h[d] * out[d];
  float g;
  if (f > kMaxExp) g = (label - 1.0f) * alpha;
  else if (f < -kMaxExp) g = label * alpha;
  else g = (label - sigmoid_of(job, f)) * alpha;
  for (int64_t d = 0; d < job.dim; ++d) err[d] += g * out[d];
  for (int64_t d = 0; d < job.dim; ++d) out[d] += g * h[d];
}

inline int64_t draw_noise(const Job& job, uint64_t& r) {
  uint32_t x = static_cast<uint32_t>((next_random(r) >> 16) % job.cum[job.vocab - 1]);
  return std::upper_bound(job.cum, job.cum + job.vocab, x) - job.cum;
}

void run_thread(const Job& job, int64_t first_sent, int64_t last_sent, uint64_t seed) {
  uint64_t r = seed;
  const int64_t D = job.dim;
  std::vector<float> err(D), hid(D);
  std::vector<int32_t> sent;
  const double planned = static_cast<double>(job.total_words) * job.epochs;
  float alpha = job.alpha;
  int64_t local = 0;
  for (int64_t epoch = 0; epoch < job.epochs; ++epoch) {
    for (int64_t s = first_sent; s < last_sent; ++s) {
      sent.clear();
      for (int64_t i = job.starts[s]; i < job.starts[s + 1]; ++i) {
        int32_t w = job.corpus[i];
        if (w < 0) continue;
        if (job.keep[w] < 1.0f &&
            job.keep[w] < (next_random(r) & 0xFFFF) / 65536.0f) continue;
        sent.push_back(w);
      }
      local += job.starts[s + 1] - job.starts[s];
      if (local > 10000) {  // linear decay on the words all threads have processed
        int64_t all = job.done->fetch_add(local) + local;
        local = 0;
        double progress = std::min(1.0, all / (planned + 1.0));
        alpha = static_cast<float>(job.alpha - (job.alpha - job.min_alpha) * progress);
      }
      const int64_t n = static_cast<int64_t>(sent.size());
      for (int64_t pos = 0; pos < n; ++pos) {
        const int64_t b = static_cast<int64_t>(next_random(r) % job.window);  // dynamic window
        const int64_t lo = std::max<int64_t>(0, pos - job.window + b);
        const int64_t hi = std::min<int64_t>(n - 1, pos + job.window - b);
        const int64_t centre = sent[pos];
        if (job.sg) {
          const float* h = job.syn0 + centre * D;
          for (int64_t c = lo; c <= hi; ++c) {
            if (c == pos) continue;
            const int64_t ctx = sent[c];
            std::fill(err.begin(), err.end(), 0.0f);
            update(job, h, ctx, 1.0f, alpha, err.data());
            for (int64_t k = 0; k < job.negative; ++k) {
              int64_t t = draw_noise(job, r);
              if (t == ctx) continue;
              update(job, h, t, 0.0f, alpha, err.data());
            }
            float* in = job.syn0 + centre * D;
            for (int64_t d = 0; d < D; ++d) in[d] += err[d];
          }
        } else {
          std::fill(hid.begin(), hid.end(), 0.0f);
          int64_t count = 0;
          for (int64_t c = lo; c <= hi; ++c) {
            if (c == pos) continue;
            const float* in = job.syn0 + static_cast<int64_t>(sent[c]) * D;
            for (int64_t d = 0; d < D; ++d) hid[d] += in[d];
            ++count;
          }
          if (count == 0) continue;
          if (job.cbow_mean)
            for (int64_t d = 0; d < D; ++d) hid[d] /= count;
          std::fill(err.begin(), err.end(), 0.0f);
          update(job, hid.data(), centre, 1.0f, alpha, err.data());
          for (int64_t k = 0; k < job.negative; ++k) {
            int64_t t = draw_noise(job, r);
            if (t == centre) continue;
            update(job, hid.data(), t, 0.0f, alpha, err.data());
          }
          if (!job.cbow_mean)
            for (int64_t d = 0; d < D; ++d) err[d] /= count;
          for (int64_t c = lo; c <= hi; ++c) {
            if (c == pos) continue;
            float* in = job.syn0 + static_cast<int64_t>(sent[c]) * D;
            for (int64_t d = 0; d < D; ++d) in[d] += err[d];
          }
        }
      }
    }
  }
  job.done->fetch_add(local);
}

int64_t train(py::array_t<float, py::array::c_style> syn0, py::array_t<float, py::array::c_style> syn1,
              py::array_t<int32_t, py::array::c_style | py::array::forcecast> corpus,
              py::array_t<int64_t, py::array::c_style | py::array::forcecast> starts,
              py::array_t<float, py::array::c_style | py::array::forcecast> keep,
              py::array_t<uint32_t, py::array::c_style | py::array::forcecast> cum, bool sg,
              int64_t window, int64_t negative, int64_t epochs, float alpha, float min_alpha,
              bool cbow_mean, int threads, uint64_t seed) {
  if (syn0.ndim() != 2 || syn1.ndim() != 2 || syn0.shape(0) != syn1.shape(0) ||
      syn0.shape(1) != syn1.shape(1))
    throw std::invalid_argument("syn0 and syn1 must be (V, D) arrays of the same shape");
  if (keep.shape(0) != syn0.shape(0) || cum.shape(0) != syn0.shape(0))
    throw std::invalid_argument("keep and cum must have one entry per word");
  if (window < 1 || threads < 1 || starts.shape(0) < 1)
    throw std::invalid_argument("window and threads must be positive");
  std::atomic<int64_t> done{0};
  Job job;
  job.syn0 = syn0.mutable_data();
  job.syn1 = syn1.mutable_data();
  job.corpus = corpus.data();
  job.starts = starts.data();
  job.keep = keep.data();
  job.cum = cum.data();
  job.vocab = syn0.shape(0);
  job.dim = syn0.shape(1);
  job.window = window;
  job.negative = negative;
  job.epochs = epochs;
  job.sg = sg;
  job.cbow_mean = cbow_mean;
  job.alpha = alpha;
  job.min_alpha = min_alpha;
  const int64_t n_sent = starts.shape(0) - 1;
  job.total_words = starts.data()[n_sent] - starts.data()[0];
  job.done = &done;
  job.exp_table.resize(kExpTable + 1);
  for (int i = 0; i <= kExpTable; ++i) {
    float e = std::exp((i / static_cast<float>(kExpTable) * 2 - 1) * kMaxExp);
    job.exp_table[i] = e / (e + 1);
  }
  {
    py::gil_scoped_release release;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      int64_t a = n_sent * t / threads, b = n_sent * (t + 1) / threads;
      pool.emplace_back(run_thread, std::cref(job), a, b, seed + 7919ULL * t);
    }
    for (auto& th : pool) th.join();
  }
  return done.load();
}

}  // namespace

PYBIND11_MODULE(_w2v_core, m) {
  m.doc() = "chainrule's compiled word2vec kernel (skip-gram / CBOW with negative sampling).";
  m.def("train", &train, py::arg("syn0"), py::arg("syn1"), py::arg("corpus"), py::arg("starts"),
        py::arg("keep"), py::arg("cum"), py::arg("sg"), py::arg("window"), py::arg("negative"),
        py::arg("epochs"), py::arg("alpha"), py::arg("min_alpha"), py::arg("cbow_mean"),
        py::arg("threads"), py::arg("seed"));
}
