/* pml — the op table: one entry per op. Adding an op = one entry here + its kernels + one case in
 * the op test harness (tests/test_ops.c walks this table). */
#include "kernels.h"

#define S PML_SPLIT_SAMPLE
#define P PML_SPLIT_PARAM
#define A PML_SPLIT_ATTR

#define ENTRY(op, nm, lo, hi, spl, apx, dxp, dwp)                                                  \
    [PML_OP_##op] = {.name = #nm,                                                                 \
                     .min_in = lo,                                                                 \
                     .max_in = hi,                                                                 \
                     .splits = spl,                                                                \
                     .approx_splits = apx,                                                         \
                     .dx_partial = dxp,                                                            \
                     .dw_partial = dwp,                                                            \
                     .infer = pml__##nm##_infer,                                                   \
                     .fwd = pml__##nm##_fwd,                                                       \
                     .bwd = pml__##nm##_bwd,                                                       \
                     .fwd_ref = pml__##nm##_fwd_ref,                                               \
                     .bwd_ref = pml__##nm##_bwd_ref,                                               \
                     .flops = pml__##nm##_flops,                                                   \
                     .ws_floats = pml__##nm##_ws,                                                  \
                     .in_region = pml__##nm##_in_region}

const pml_op_def pml_ops[PML_OP_COUNT] = {
    /*    op            name          inputs           splits  approx  dx partial  dw partial */
    ENTRY(INPUT, input, 0, 0, S | P | A, 0, 0, 0),
    ENTRY(LINEAR, linear, 1, 1, S | P, 0, P, S),
    ENTRY(CONV2D, conv2d, 1, 1, S | P | A, 0, P | A, S | A),
    ENTRY(MAXPOOL2D, maxpool2d, 1, 1, S | P | A, 0, A, 0),
    ENTRY(AVGPOOL2D, avgpool2d, 1, 1, S | P | A, 0, A, 0),
    ENTRY(RELU, relu, 1, 1, S | P | A, 0, 0, 0),
    ENTRY(FLATTEN, flatten, 1, 1, S | P, 0, 0, 0),
    ENTRY(ADD, add, 1, PML_MAX_INPUTS, S | P | A, 0, 0, S),
    ENTRY(CONCAT, concat, 1, PML_MAX_INPUTS, S | P | A, 0, 0, 0),
    ENTRY(BATCHNORM, batchnorm, 1, 1, P, S | A, 0, S | A),
    ENTRY(DROPOUT, dropout, 1, 1, S | P | A, 0, 0, 0),
    ENTRY(SOFTMAX_XENT, softmax_xent, 1, 1, S, 0, 0, 0),
    ENTRY(ACTIVATION, activation, 1, 1, S | P | A, 0, 0, 0),
    ENTRY(MUL, mul, 2, 2, S | P, 0, 0, 0),
    ENTRY(MATMUL, matmul, 2, 2, S | P, 0, P, 0),
};
