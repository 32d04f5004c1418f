// mask_budget.cuh: budget-mode selection of the skeleton mask on the device (mask_budget.cu).
#ifndef SKEL_MASK_BUDGET_CUH
#define SKEL_MASK_BUDGET_CUH

#include <stddef.h>
#include <stdint.h>

// Device scratch the selection needs for nb block rows.
size_t gpu_mask_budget_scratch_bytes(int64_t nb);
// mask (nb, nb) on the device holds the forced blocks (1) and zeros; marks `want` more causal blocks,
// the highest scores sB_{I-J} + vB_J + hB_I (sB from Mb as in the block scan) first and ties at the
// cut in row-major order, as mask_skeleton does. Asynchronous, on the default stream; want is at
// most the free causal blocks.
void gpu_mask_budget(uint8_t *mask, const float *Mb, const float *vB, const float *hB, int64_t nb, int64_t want,
                     void *scratch);

#endif
