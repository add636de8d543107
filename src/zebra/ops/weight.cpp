#include "zebra/ops/weight.hpp"

#include "zebra/util/error.hpp"

namespace zebra {

void dense_data_error(const WeightMatrix& w, DType want) {
  fail("weights of dtype ", to_string(w.dtype), " (row stride ", w.row_bytes, " bytes) where dense ", to_string(want),
       " rows are needed: training and backward need fp32 master weights");
}

}  // namespace zebra
