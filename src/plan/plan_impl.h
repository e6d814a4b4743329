/* plan_impl.h: what the planner's files share inside the library: the
 * built-in catalog texts (catalog_data.c) and the catalog's layout. */
#ifndef CITADEL_PLAN_IMPL_H
#define CITADEL_PLAN_IMPL_H

#include <stddef.h>

#include "citadel/plan.h"

extern const char cit_plan_catalog_models[];
extern const char cit_plan_catalog_hardware[];
extern const char cit_plan_catalog_cloud[];

struct cit_plan_catalog {
    struct cit_plan_model *models;
    size_t n_models, cap_models;
    struct cit_plan_hw *hw;
    size_t n_hw, cap_hw;
    struct cit_plan_cloud *cloud;
    size_t n_cloud, cap_cloud;
};

#endif
