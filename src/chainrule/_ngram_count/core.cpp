// chainrule's compiled n-gram counter: whitespace words -> ids (a vocabulary grown in order of
// first appearance, or a closed one), the padded top-order windows of every sentence packed
// into one integer with the LAST word most significant, sorted and counted in bounded memory
// (full buffers become sorted runs, merged in memory or spilled to disk and merged at the end),
// then one pass over the sorted windows that yields every order's table in suffix encoding
// (key = index of the suffix in table k-1 * V + first word) with its raw counts, exactly what
// chainrule/models/ngram/estimate.py's derive_orders computes with numpy. Also the text of an
// ARPA file, section by section. The estimator's arithmetic stays in numpy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>


#include "arpa_text.h"
#include "common.h"
#include "text.h"

namespace ngram_count {

// -- counting -----------------------------------------------------------------------------------
struct Run {  // a sorted run of distinct windows, in memory
  template <class K>
  static void unique(std::vector<K>& keys, std::vector<u64>& counts) {
    std::sort(keys.begin(), keys.end());
    counts.clear();
    size_t w = 0;
    for (size_t i = 0; i < keys.size();) {
      size_t j = i + 1;
      while (j < keys.size() && keys[j] == keys[i]) ++j;
      keys[w] = keys[i];
      counts.push_back(j - i);
      ++w;
      i = j;
    }
    keys.resize(w);
  }
};

template <class K>
struct RunReader {  // a run spilled to disk (n, keys[n], counts[n]), read back in blocks
  FILE* f = nullptr;   // at the keys
  FILE* fc = nullptr;  // at the counts
  u64 left = 0;
  std::vector<K> keys;
  std::vector<u64> counts;
  size_t pos = 0, block = 0;
  void open(const std::string& name, size_t block_size) {
    f = std::fopen(name.c_str(), "rb");
    fc = std::fopen(name.c_str(), "rb");
    if (!f || !fc || std::fread(&left, sizeof(u64), 1, f) != 1 ||
        std::fseek(fc, static_cast<long>(sizeof(u64) + left * sizeof(K)), SEEK_SET) != 0)
      throw std::runtime_error("a spilled n-gram run could not be read back");
    block = block_size;
    next_block();
  }
  void close() {
    if (f) std::fclose(f);
    if (fc) std::fclose(fc);
    f = fc = nullptr;
  }
  bool next_block() {
    size_t n = static_cast<size_t>(std::min<u64>(left, block));
    keys.resize(n);
    counts.resize(n);
    if (n && (std::fread(keys.data(), sizeof(K), n, f) != n ||
              std::fread(counts.data(), sizeof(u64), n, fc) != n))
      throw std::runtime_error("a spilled n-gram run could not be read back");
    left -= n;
    pos = 0;
    return n > 0;
  }
};

struct Derived {  // every order's table as it is built
  std::vector<std::vector<uint32_t>> parent, first;
  std::vector<std::vector<int64_t>> raw;
  std::vector<int64_t> raw1;
};

class CounterBase {
 public:
  virtual ~CounterBase() = default;
  virtual void add_ids(const int32_t* ids, const int64_t* lengths, size_t n_sent) = 0;
  virtual void add_text(const char* data, size_t n) = 0;
  virtual py::dict finish(int64_t V) = 0;
};

template <class K>
class Counter : public CounterBase {
 public:
  Counter(int order, int32_t bos, int32_t eos, u64 memory, std::string spill_dir)
      : N_(order), bos_(bos), eos_(eos), spill_dir_(std::move(spill_dir)) {
    spill_ = memory > 0;
    u64 per = sizeof(K) + sizeof(u64);
    cap_ = spill_ ? std::max<u64>(16, memory / per) : (u64{1} << 24);
    if (spill_) buf_.reserve(cap_);
    K start = 0;
    for (int j = 0; j < N_; ++j) start = (start << kBits) | static_cast<K>(bos_);
    start_ = start;
    top_shift_ = kBits * (N_ - 1);
  }
  ~Counter() override {
    for (auto& name : files_) std::remove(name.c_str());
  }

  void set_vocab(const std::vector<std::string>& words, const std::vector<int32_t>& skip,
                 int32_t unk, bool grow) {
    for (size_t i = 0; i < words.size(); ++i) {
      const auto& w = words[i];
      vocab_.put(w.data(), w.size(), Vocab::hash(w.data(), w.size()), static_cast<int32_t>(i));
    }
    next_id_ = static_cast<int32_t>(words.size());
    skip_.assign(words.size(), 0);
    for (int32_t s : skip)
      if (s >= 0 && static_cast<size_t>(s) < skip_.size()) skip_[s] = 1;
    unk_ = unk;
    grow_ = grow;
  }

  void add_ids(const int32_t* ids, const int64_t* lengths, size_t n_sent) override {
    size_t at = 0;
    for (size_t s = 0; s < n_sent; ++s) {
      K key = start_;
      for (int64_t t = 0; t < lengths[s]; ++t) {
        int32_t w = ids[at++];
        if (w < 0 || w >= kMaxVocab) throw std::out_of_range("token id outside [0, 2**21)");
        push(key = (key >> kBits) | (static_cast<K>(w) << top_shift_));
      }
      push((key >> kBits) | (static_cast<K>(eos_) << top_shift_));
      ++sentences_;
    }
  }

  // whole lines (the last one may lack its line end); words -> ids -> windows
  void add_text(const char* data, size_t n) override {
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    const auto* end = p + n;
    K key = start_;
    bool in_line = false;  // bytes seen since the last line break
    while (p < end) {
      bool brk = false;
      size_t sep = separator(p, end, &brk);
      if (sep) {
        p += sep;
        if (brk) {
          push((key >> kBits) | (static_cast<K>(eos_) << top_shift_));
          ++sentences_;
          key = start_;
          in_line = false;
        } else {
          in_line = true;
        }
        continue;
      }
      const unsigned char* w0 = p;
      bool b2;
      while (p < end && !separator(p, end, &b2)) ++p;
      in_line = true;
      const char* w = reinterpret_cast<const char*>(w0);
      size_t len = static_cast<size_t>(p - w0);
      u64 h = Vocab::hash(w, len);
      int32_t id = vocab_.find(w, len, h);
      if (id < 0) {
        if (grow_) {
          id = next_id_++;
          if (id >= kMaxVocab) throw std::length_error("more than 2**21 distinct words");
          vocab_.put(w, len, h, id);
          new_words_.emplace_back(w, len);
        } else {
          id = unk_;
        }
      } else if (static_cast<size_t>(id) < skip_.size() && skip_[id]) {
        if (first_skipped_ < 0) first_skipped_ = id;
        continue;
      }
      push(key = (key >> kBits) | (static_cast<K>(id) << top_shift_));
    }
    if (in_line) {
      push((key >> kBits) | (static_cast<K>(eos_) << top_shift_));
      ++sentences_;
    }
  }

  py::dict finish(int64_t V) override {
    if (V > kMaxVocab) throw std::length_error("vocabulary larger than 2**21");
    V_ = V;
    derived_.parent.assign(N_ + 1, {});
    derived_.first.assign(N_ + 1, {});
    derived_.raw.assign(N_ + 1, {});
    derived_.raw1.assign(static_cast<size_t>(V), 0);
    last_.assign(N_ + 1, -1);
    have_prev_ = false;
    spilled_ = !files_.empty();
    timing_ = std::getenv("CHAINRULE_NGRAM_TIMING") != nullptr;
    tick("counting");
    if (files_.empty()) {
      flush_memory();
      tick("sort");
      for (size_t i = 0; i < table_.size(); ++i) derive(table_[i], counts_[i]);
      std::vector<K>().swap(table_);
      std::vector<u64>().swap(counts_);
    } else {
      if (!buf_.empty()) spill();
      std::vector<K>().swap(buf_);
      merge_runs();
    }
    tick("derive");
    py::dict out = result();
    tick("keys+contexts");
    return out;
  }
  void tick(const char* what) {
    if (!timing_) return;
    std::clock_t now = std::clock();
    std::fprintf(stderr, "  [ngram core] %s: %.3f s cpu\n", what,
                 static_cast<double>(now - clock_) / CLOCKS_PER_SEC);
    clock_ = now;
  }

  u64 tokens() const { return tokens_; }
  u64 sentences() const { return sentences_; }
  u64 runs() const { return runs_; }
  bool spilled() const { return spilled_; }
  int32_t first_skipped() const { return first_skipped_; }
  const std::vector<std::string>& new_words() const { return new_words_; }

 private:
  inline void push(K key) {
    buf_.push_back(key);
    ++tokens_;
    if (buf_.size() >= cap_) {
      if (spill_) spill(); else flush_memory();
    }
  }

  void flush_memory() {
    if (buf_.empty()) return;
    std::vector<u64> c;
    Run::unique(buf_, c);
    ++runs_;
    if (table_.empty()) {
      table_.swap(buf_);
      counts_.swap(c);
    } else {  // merge the new run into the running table
      std::vector<K> keys;
      std::vector<u64> counts;
      keys.reserve(table_.size() + buf_.size());
      counts.reserve(table_.size() + buf_.size());
      size_t i = 0, j = 0;
      while (i < table_.size() || j < buf_.size()) {
        if (j == buf_.size() || (i < table_.size() && table_[i] < buf_[j])) {
          keys.push_back(table_[i]); counts.push_back(counts_[i]); ++i;
        } else if (i == table_.size() || buf_[j] < table_[i]) {
          keys.push_back(buf_[j]); counts.push_back(c[j]); ++j;
        } else {
          keys.push_back(table_[i]); counts.push_back(counts_[i] + c[j]); ++i; ++j;
        }
      }
      table_.swap(keys);
      counts_.swap(counts);
    }
    buf_.clear();
  }

  void spill() {
    std::vector<u64> c;
    Run::unique(buf_, c);
    std::string name = spill_dir_ + "/run" + std::to_string(files_.size()) + ".bin";
    FILE* f = std::fopen(name.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write a spilled n-gram run in " + spill_dir_);
    files_.push_back(name);
    u64 n = buf_.size();
    bool ok = std::fwrite(&n, sizeof(n), 1, f) == 1 &&
              std::fwrite(buf_.data(), sizeof(K), n, f) == n &&
              std::fwrite(c.data(), sizeof(u64), n, f) == n;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) throw std::runtime_error("cannot write a spilled n-gram run in " + spill_dir_ +
                                      " (is the disk full?)");
    ++runs_;
    buf_.clear();
  }

  void merge_runs() {
    size_t R = files_.size();
    std::vector<RunReader<K>> readers(R);
    size_t block = static_cast<size_t>(std::max<u64>(4, cap_ / 2 / R));
    for (size_t r = 0; r < R; ++r) readers[r].open(files_[r], block);
    // a binary heap of run indices by their current key
    std::vector<size_t> heap;
    auto cur = [&](size_t r) { return readers[r].keys[readers[r].pos]; };
    auto greater = [&](size_t a, size_t b) { return cur(a) > cur(b); };
    for (size_t r = 0; r < R; ++r)
      if (!readers[r].keys.empty()) heap.push_back(r);
    std::make_heap(heap.begin(), heap.end(), greater);
    bool have = false;
    K key = 0;
    u64 count = 0;
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), greater);
      size_t r = heap.back();
      K k = cur(r);
      u64 c = readers[r].counts[readers[r].pos];
      if (have && k == key) {
        count += c;
      } else {
        if (have) derive(key, count);
        key = k;
        count = c;
        have = true;
      }
      if (++readers[r].pos == readers[r].keys.size() && !readers[r].next_block()) {
        heap.pop_back();
      } else {
        std::push_heap(heap.begin(), heap.end(), greater);
      }
    }
    if (have) derive(key, count);
    for (auto& rd : readers) rd.close();
    for (auto& name : files_) std::remove(name.c_str());
    files_.clear();
  }

  // one distinct window, in sorted order: extend every order's table
  void derive(K key, u64 count) {
    uint32_t comp[24];
    for (int j = 0; j < N_; ++j)
      comp[j] = static_cast<uint32_t>(static_cast<u64>(key >> (kBits * (N_ - 1 - j))) & kMask);
    int L = 0;  // leading components shared with the previous window
    if (have_prev_)
      while (L < N_ && comp[L] == prev_[L]) ++L;
    std::memcpy(prev_, comp, sizeof(uint32_t) * N_);
    have_prev_ = true;
    if (comp[0] >= static_cast<uint64_t>(V_))
      throw std::out_of_range("a token id lies outside the vocabulary");
    derived_.raw1[comp[0]] += static_cast<int64_t>(count);
    for (int k = 2; k <= N_; ++k) {
      if (comp[k - 2] == static_cast<uint32_t>(bos_)) break;  // <s> inside: padding, not an n-gram
      if (k > L) {
        uint32_t parent = k == 2 ? comp[0] : static_cast<uint32_t>(last_[k - 1]);
        derived_.parent[k].push_back(parent);
        derived_.first[k].push_back(comp[k - 1]);
        derived_.raw[k].push_back(0);
        last_[k] = static_cast<int64_t>(derived_.raw[k].size()) - 1;
      }
      derived_.raw[k][last_[k]] += static_cast<int64_t>(count);
    }
  }

  py::dict result() {
    py::list keys, raw, context;
    py::array_t<int64_t> r1(V_);
    std::memcpy(r1.mutable_data(), derived_.raw1.data(), sizeof(int64_t) * V_);
    std::vector<int64_t>().swap(derived_.raw1);
    raw.append(r1);
    std::vector<const int64_t*> key_ptr(N_ + 1, nullptr), ctx_ptr(N_ + 1, nullptr);
    std::vector<size_t> sizes(N_ + 1, 0);
    sizes[1] = static_cast<size_t>(V_);
    for (int k = 2; k <= N_; ++k) {
      size_t n = derived_.raw[k].size();
      sizes[k] = n;
      py::array_t<int64_t> kk(n), rr(n), cc(n);
      int64_t* kd = kk.mutable_data();
      int64_t* cd = cc.mutable_data();
      const auto& par = derived_.parent[k];
      const auto& fst = derived_.first[k];
      for (size_t i = 0; i < n; ++i) kd[i] = static_cast<int64_t>(par[i]) * V_ + fst[i];
      std::memcpy(rr.mutable_data(), derived_.raw[k].data(), sizeof(int64_t) * n);
      // context (w1 .. w_{k-1}) of each entry: its index in table k-1, through a hash index
      if (k == 2) {
        for (size_t i = 0; i < n; ++i) cd[i] = fst[i];
      } else {
        const int64_t* tk = key_ptr[k - 1];
        size_t m = sizes[k - 1];
        int shift = 64;
        size_t cap = 1;
        while (cap < 2 * m + 2) { cap <<= 1; --shift; }
        const size_t mask = cap - 1;
        auto home = [shift](int64_t key) {
          return static_cast<size_t>((static_cast<u64>(key) * 0x9E3779B97F4A7C15ULL) >> shift);
        };
        std::vector<uint32_t> slot(cap, UINT32_MAX);
        for (size_t j = 0; j < m; ++j) {
          size_t h = home(tk[j]);
          while (slot[h] != UINT32_MAX) h = (h + 1) & mask;
          slot[h] = static_cast<uint32_t>(j);
        }
        const int64_t* pc = ctx_ptr[k - 1];
        for (size_t i = 0; i < n; ++i) {
          int64_t q = pc[par[i]] * V_ + fst[i];
          size_t h = home(q);
          while (slot[h] != UINT32_MAX && tk[slot[h]] != q) h = (h + 1) & mask;
          if (slot[h] == UINT32_MAX) throw std::logic_error("an n-gram's context is missing");
          cd[i] = slot[h];
        }
      }
      std::vector<uint32_t>().swap(derived_.parent[k]);
      std::vector<uint32_t>().swap(derived_.first[k]);
      std::vector<int64_t>().swap(derived_.raw[k]);
      key_ptr[k] = kd;
      ctx_ptr[k] = cd;
      keys.append(kk);
      raw.append(rr);
      context.append(cc);
    }
    py::dict out;
    out["keys"] = keys;
    out["raw"] = raw;
    out["context"] = context;
    return out;
  }

  int N_;
  int32_t bos_, eos_;
  std::string spill_dir_;
  bool spill_ = false, spilled_ = false;
  u64 cap_ = 0;
  K start_ = 0;
  int top_shift_ = 0;
  std::vector<K> buf_, table_;
  std::vector<u64> counts_;
  std::vector<std::string> files_;
  u64 tokens_ = 0, sentences_ = 0, runs_ = 0;
  Vocab vocab_;
  std::vector<char> skip_;
  std::vector<std::string> new_words_;
  int32_t next_id_ = 0, unk_ = -1, first_skipped_ = -1;
  bool grow_ = false;
  // derivation state
  int64_t V_ = 0;
  Derived derived_;
  std::vector<int64_t> last_;
  uint32_t prev_[24] = {0};
  bool have_prev_ = false;
  bool timing_ = false;
  std::clock_t clock_ = 0;
};

// The Python object: picks the key width from the order.
class PyCounter {
 public:
  PyCounter(int order, int32_t bos, int32_t eos, u64 memory, std::string spill_dir) {
    if (order < 1 || order > 6) throw std::invalid_argument("the compiled counter takes orders 1-6");
    if (order <= 3) {
      impl64_ = std::make_unique<Counter<u64>>(order, bos, eos, memory, spill_dir);
    } else {
      impl128_ = std::make_unique<Counter<u128>>(order, bos, eos, memory, spill_dir);
    }
  }
  void set_vocab(const std::vector<std::string>& words, const std::vector<int32_t>& skip,
                 int32_t unk, bool grow) {
    if (impl64_) impl64_->set_vocab(words, skip, unk, grow);
    else impl128_->set_vocab(words, skip, unk, grow);
  }
  void add_text(py::bytes data) {
    char* p;
    Py_ssize_t n;
    PyBytes_AsStringAndSize(data.ptr(), &p, &n);
    py::gil_scoped_release release;
    base()->add_text(p, static_cast<size_t>(n));
  }
  void add_ids(py::array_t<int32_t, py::array::c_style | py::array::forcecast> ids,
               py::array_t<int64_t, py::array::c_style | py::array::forcecast> lengths) {
    int64_t total = 0;
    const int64_t* l = lengths.data();
    for (py::ssize_t i = 0; i < lengths.size(); ++i) {
      if (l[i] < 0) throw std::invalid_argument("negative sentence length");
      total += l[i];
    }
    if (total != ids.size()) throw std::invalid_argument("lengths do not add up to the ids");
    base()->add_ids(ids.data(), l, static_cast<size_t>(lengths.size()));
  }
  py::dict finish(int64_t V) {
    py::dict out = base()->finish(V);
    out["tokens"] = impl64_ ? impl64_->tokens() : impl128_->tokens();
    out["sentences"] = impl64_ ? impl64_->sentences() : impl128_->sentences();
    out["runs"] = impl64_ ? impl64_->runs() : impl128_->runs();
    out["spilled"] = impl64_ ? impl64_->spilled() : impl128_->spilled();
    return out;
  }
  std::vector<std::string> new_words() const {
    return impl64_ ? impl64_->new_words() : impl128_->new_words();
  }
  int32_t first_skipped() const {
    return impl64_ ? impl64_->first_skipped() : impl128_->first_skipped();
  }
  u64 tokens() const { return impl64_ ? impl64_->tokens() : impl128_->tokens(); }

 private:
  CounterBase* base() {
    return impl64_ ? static_cast<CounterBase*>(impl64_.get()) : impl128_.get();
  }
  std::unique_ptr<Counter<u64>> impl64_;
  std::unique_ptr<Counter<u128>> impl128_;
};

}  // namespace ngram_count

using namespace ngram_count;  // NOLINT

PYBIND11_MODULE(_ngram_count_core, m) {
  m.doc() = "chainrule's compiled n-gram counter (sorted, spilled runs) and ARPA text writer.";
  py::class_<PyCounter>(m, "Counter")
      .def(py::init<int, int32_t, int32_t, u64, std::string>(), py::arg("order"), py::arg("bos"),
           py::arg("eos"), py::arg("memory") = 0, py::arg("spill_dir") = "")
      .def("set_vocab", &PyCounter::set_vocab, py::arg("words"), py::arg("skip"), py::arg("unk"),
           py::arg("grow"))
      .def("add_text", &PyCounter::add_text)
      .def("add_ids", &PyCounter::add_ids)
      .def("finish", &PyCounter::finish, py::arg("vocab_size"))
      .def("new_words", &PyCounter::new_words)
      .def("first_skipped", &PyCounter::first_skipped)
      .def_property_readonly("tokens", &PyCounter::tokens);
  m.def("format_floats", &format_floats, py::arg("values"));
  py::class_<ArpaWords>(m, "ArpaWords").def(py::init<std::vector<std::string>>());
  m.def("arpa_lines", &arpa_lines, py::arg("words"), py::arg("vocab_size"), py::arg("keys"),
        py::arg("prob"), py::arg("backoff"), py::arg("k"), py::arg("start"), py::arg("stop"),
        py::arg("with_backoff"), py::arg("keep1"));
}
