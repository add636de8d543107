// The one thread pool: OpenMP, shared with OpenBLAS (which is linked in its OpenMP build).
#pragma once

namespace zebra {

int num_threads();
// Sets the OpenMP thread count used by zebra's kernels and by OpenBLAS.
void set_num_threads(int n);

}  // namespace zebra
