/* The peer tests' walk over the references in PB_PEER_DIR (one folder per
 * case, scripts/make_peer_reference.py), shared by the single-GPU and the tp
 * tests so both judge exactly the same cases. */
#ifndef PB_PEER_CASES_H
#define PB_PEER_CASES_H
#include "../../models/model_spec.h"
#include "peer_reference.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*peer_case_fn)(int *failures_, const struct peer_case *c, const struct model_spec *m);
/* fn on every case with its model spec (config.json), counting failures in
 * *failures_; a test skip when PB_PEER_DIR is not set. */
void peer_for_each_case(int *failures_, peer_case_fn fn);

#ifdef __cplusplus
}
#endif
#endif
