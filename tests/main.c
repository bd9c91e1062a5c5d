/* tests/main.c: runs every suite of the tapegrad test binary (Check, forking per test). */
#include <stdlib.h>

#include "tests/tests.h"

int main(void)
{
    /* No OpenMP code may run here: libgomp's pool does not survive Check's fork(). */
    Suite *(*const suites[])(void) = {
        tensor_suite, ops_pointwise_suite, ops_matmul_suite, ops_shape_suite, ops_reduce_suite,
        ops_tape_suite, ops_errors_suite, gradcheck_suite, gemm_suite, nn_suite, cells_suite,
        stack_suite, optim_suite, checkpoint_suite, observe_suite, reliability_suite,
        errors_suite, fuzz_suite, text_suite,
        ops_ref_suite, ops_pointwise_ref_suite, ops_norm_suite, zoo_suite,
        ops_layout_suite, custom_suite, regular_suite,
    };
    SRunner *sr = srunner_create(NULL);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
