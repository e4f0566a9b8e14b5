// The simulator's per-step numeric kernels (Cluster::Cost), with their vector versions.
//
// Each kernel has a plain x86-64 version and versions for wider vector units; the public entry
// point picks the widest the CPU has on its first call. Every version performs, element by
// element, the same IEEE operations in the same order (no fused multiply-add: step_kernels.cc is
// built with -ffp-contract=off), so all versions give the same bits and the simulator's output
// does not depend on the machine. The versions are declared here so a test can hold them to that.
#pragma once

#include <cstddef>

namespace gimbal::sim {

// y[i] += a * x[i] for i < n. y and x must not overlap.
void Axpy(double* y, const double* x, double a, size_t n);
void AxpyPlain(double* y, const double* x, double a, size_t n);
void AxpyAvx2(double* y, const double* x, double a, size_t n);    // needs AVX2
void AxpyAvx512(double* y, const double* x, double a, size_t n);  // needs AVX-512F

// The expected share of time a slot expecting n tokens is active, 1 - e^-n, from a table with
// linear interpolation on (0, 30) (error < 1e-5): exactly 0 at n <= 0 or NaN, exactly 1 from 30.
double ActiveProbability(double n);
// Σ over i < count, in order from 0, of ActiveProbability(n[i]). `scratch` holds count doubles.
double SumActive(const double* n, double* scratch, int count);
double SumActiveScalar(const double* n, double* scratch, int count);
double SumActiveAvx2(const double* n, double* scratch, int count);  // needs AVX2

}  // namespace gimbal::sim
