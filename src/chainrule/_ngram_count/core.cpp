// chainrule's compiled n-gram counter (counter.h): whitespace words -> ids, the padded top-order
// windows of every sentence sorted and counted in bounded memory (sorted runs, spilled to disk
// under a budget and merged at the end), then one pass over the sorted windows that yields
// every order's table in suffix encoding (key = index of the suffix in table k-1 * V + first
// word) with its raw counts -- exactly what chainrule/models/ngram/estimate.py's derive_orders
// computes with numpy -- in memory, or written to files for the out-of-core estimator
// (chainrule/models/ngram/outofcore.py, which also uses the hash index of key_index.h). Also
// the text of an ARPA file, section by section. The estimator's arithmetic stays in numpy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "arpa_text.h"
#include "common.h"
#include "counter.h"
#include "key_index.h"

namespace ngram_count {

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
  py::dict finish_to_disk(int64_t V, const std::string& dir) {
    py::dict out = impl64_ ? impl64_->finish_to_disk(V, dir) : impl128_->finish_to_disk(V, dir);
    out["tokens"] = tokens();
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
      .def("finish_to_disk", &PyCounter::finish_to_disk, py::arg("vocab_size"), py::arg("directory"))
      .def("new_words", &PyCounter::new_words)
      .def("first_skipped", &PyCounter::first_skipped)
      .def_property_readonly("tokens", &PyCounter::tokens);
  py::class_<PyKeyIndex>(m, "KeyIndex")
      .def(py::init<PyKeyIndex::I64>(), py::arg("keys"))
      .def("find", &PyKeyIndex::find, py::arg("queries"));
  m.def("format_floats", &format_floats, py::arg("values"));
  py::class_<ArpaWords>(m, "ArpaWords").def(py::init<std::vector<std::string>>());
  m.def("arpa_lines", &arpa_lines, py::arg("words"), py::arg("vocab_size"), py::arg("keys"),
        py::arg("prob"), py::arg("backoff"), py::arg("k"), py::arg("start"), py::arg("stop"),
        py::arg("with_backoff"), py::arg("keep1"));
}
