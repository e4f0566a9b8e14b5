/* Gimbal expert placement planner: a C API for engines written in other languages.
 *
 * An engine (for example vLLM's EPLB, from Python through ctypes) calls the planner in-process:
 * it hands over per-layer source x expert token counts and its current physical-to-logical map,
 * and gets back a new physical-to-logical map (DeepSeek EPLB's phy2log convention: slot
 * gpu * slots_per_gpu + i) and, for the "gimbal" policy, how each source should split its tokens
 * for an expert over that expert's replicas. See docs/placement.md.
 *
 * Errors: functions return 0 on success and -1 on failure; gimbal_planner_last_error() then says
 * why. A planner is not thread-safe: use one per thread, or serialise calls.
 */
#ifndef GIMBAL_PLACEMENT_C_H_
#define GIMBAL_PLACEMENT_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gimbal_planner gimbal_planner;

typedef struct gimbal_topology {
  int gpus;            /* GPUs = EP ranks */
  int gpus_per_node;   /* 0: all on one node */
  double alpha;        /* per-token cost of a hop within a node (e.g. 0.2) */
  double beta;         /* per-token cost of a hop across nodes (e.g. 1.0); alpha <= beta */
  int expert_groups;   /* DeepSeek expert groups, for the eplb policy (1 or 0 if none; < 0 fails) */
  double expert_bytes; /* bytes of one expert in one layer (only scales reported bytes); 0: 1;
                          negative, NaN or infinite fails */
} gimbal_topology;

typedef struct gimbal_quality {
  double mean_max_over_mean;  /* max GPU load / mean, averaged over layers */
  double cross_gpu_fraction;  /* tokens leaving their source's GPU */
  double cross_node_fraction; /* tokens leaving their source's node */
  int64_t experts_moved;      /* replicas copied relative to the current placement */
  double objective;           /* sum over layers of the planning objective */
} gimbal_quality;

/* Creates a planner for `policy` ("gimbal", "eplb" or "exact") with parameters
 * "key=value;key=value" (NULL or "" for defaults; keys as for `gimbal place --set`). Returns NULL
 * on error and writes a message into err (err_len bytes, may be 0). */
gimbal_planner* gimbal_planner_create(const char* policy, const char* params, char* err,
                                      size_t err_len);
void gimbal_planner_destroy(gimbal_planner* planner);

/* Plans every layer.
 *   counts:          layers * sources * experts token counts, [layer][source][expert], >= 0
 *   current_phy2log: layers * gpus * slots_per_gpu logical expert ids, or NULL for the contiguous
 *                    layout (experts in order, redundant slots round-robin)
 *   out_phy2log:     layers * gpus * slots_per_gpu, written on success
 * Source s is taken to run on GPU s * gpus / sources. */
int gimbal_planner_plan(gimbal_planner* planner, const gimbal_topology* topology, int layers,
                        int sources, int experts, int slots_per_gpu, const double* counts,
                        const int32_t* current_phy2log, int32_t* out_phy2log);

/* After a successful plan: how source `source` splits tokens for `expert` in `layer`. Writes up to
 * `capacity` (slot, weight) pairs and returns how many there are (call again with a larger buffer
 * if that exceeds capacity); weights sum to 1. Policies without routes ("eplb") give the even split
 * over the expert's replicas. Returns -1 on error. */
int gimbal_planner_route(const gimbal_planner* planner, int layer, int source, int expert,
                         int32_t* slots, float* weights, int capacity);

/* After a successful plan: its quality against the current placement. */
int gimbal_planner_quality(const gimbal_planner* planner, gimbal_quality* out);

/* The last error message ("" when none); valid until the next call on this planner. */
const char* gimbal_planner_last_error(const gimbal_planner* planner);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GIMBAL_PLACEMENT_C_H_ */
