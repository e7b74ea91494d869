/*
 * routes.h — latchkey's one route table (DESIGN §5) and its dispatcher.
 */
#ifndef LK_ROUTES_H
#define LK_ROUTES_H

#include "http/respond.h"

/* Checks header limits, finds the route for rc->req and runs its handler;
 * answers 404 / 405 / 431 in the error shape itself. Returns 0. */
int lk_routes_dispatch(struct lk_reqctx *rc);

#endif
