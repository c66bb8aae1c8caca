// The counter itself: whitespace words -> ids (a vocabulary grown in order of first
// appearance, or a closed one), the padded top-order windows of every sentence packed into one
// integer K with the LAST word most significant, buffered, sorted and counted (runs.h); full
// buffers are merged in memory or, with a budget, spilled to disk and merged at the end; then
// one pass over the sorted windows derives every order's table, in memory (derived.h) or
// written to disk (order_files.h).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "derived.h"
#include "order_files.h"
#include "runs.h"
#include "text.h"

namespace ngram_count {

// -- counting -----------------------------------------------------------------------------------
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
    // with a budget the buffer of keys is all there is: a run is made distinct in place and
    // its counts go straight to disk (runs.h)
    cap_ = spill_ ? std::max<u64>(16, memory / sizeof(K)) : (u64{1} << 24);
    if (spill_) buf_.reserve(cap_);
    K start = 0;
    for (int j = 0; j < N_; ++j) start = (start << kBits) | static_cast<K>(bos_);
    start_ = start;
    top_shift_ = kBits * (N_ - 1);
  }
  ~Counter() override { remove_runs(); }
  void remove_runs() {
    for (auto& name : files_) {
      std::remove((name + ".keys").c_str());
      std::remove((name + ".counts").c_str());
    }
    files_.clear();
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
    start_derive(V);
    derived_.parent.assign(N_ + 1, {});
    derived_.first.assign(N_ + 1, {});
    derived_.raw.assign(N_ + 1, {});
    derived_.raw1.assign(static_cast<size_t>(V), 0);
    last_.assign(N_ + 1, -1);
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
    py::dict out = derived_arrays(derived_, N_, V_);
    tick("keys+contexts");
    return out;
  }

  // the out-of-core end: every run spilled, merged from disk, and every order's table written
  // to ``dir`` as it is derived (order_files.h); returns the unigram arrays and the sizes
  py::dict finish_to_disk(int64_t V, const std::string& dir) {
    start_derive(V);
    derived_.raw1.assign(static_cast<size_t>(V), 0);
    disk_ = std::make_unique<OrderFiles>(N_, V, dir);
    if (!spill_) flush_memory();  // a counter made without a budget: one run in memory
    if (!buf_.empty()) spill();
    std::vector<K>().swap(buf_);
    for (size_t i = 0; i < table_.size(); ++i) derive(table_[i], counts_[i]);
    std::vector<K>().swap(table_);
    std::vector<u64>().swap(counts_);
    if (!files_.empty()) merge_runs();
    disk_->close();
    tick("derive to disk");
    py::array_t<int64_t> raw1(V), left1(V);
    std::memcpy(raw1.mutable_data(), derived_.raw1.data(), sizeof(int64_t) * V);
    std::memcpy(left1.mutable_data(), disk_->left1.data(), sizeof(int64_t) * V);
    std::vector<int64_t> sizes(1, V);
    for (int k = 2; k <= N_; ++k) sizes.push_back(disk_->size(k));
    disk_.reset();
    py::dict out;
    out["raw1"] = raw1;
    out["left1"] = left1;
    out["sizes"] = sizes;
    return out;
  }
  void start_derive(int64_t V) {
    if (V > kMaxVocab) throw std::length_error("vocabulary larger than 2**21");
    V_ = V;
    have_prev_ = false;
    spilled_ = !files_.empty();
    timing_ = std::getenv("CHAINRULE_NGRAM_TIMING") != nullptr;
    tick("counting");
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
    files_.push_back(spill_dir_ + "/run" + std::to_string(files_.size()));
    Run::spill(buf_, files_.back());
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
    remove_runs();
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
      if (disk_) {
        if (k > L) disk_->start(k, k == 2 ? comp[0] : disk_->last(k - 1), comp[k - 1]);
        disk_->add(k, count);
        continue;
      }
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
  std::unique_ptr<OrderFiles> disk_;
  uint32_t prev_[24] = {0};
  bool have_prev_ = false;
  bool timing_ = false;
  std::clock_t clock_ = 0;
};

}  // namespace ngram_count
